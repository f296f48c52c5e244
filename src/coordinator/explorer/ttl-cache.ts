/**
 * A value kept for `ttlMs` and then refreshed off the request path: a reader past the TTL gets
 * the value it has at once while one reload runs behind it (stale-while-revalidate). Only the very
 * first reader, or one after a failed first load, waits for the load. For pages whose figures may
 * lag a few seconds (prices, regions), so a burst of visitors costs one query per TTL.
 */
export class TtlCache<T> {
  private value: { data: T; atMs: number } | undefined;
  private loading: Promise<T> | undefined;

  constructor(
    private readonly load: () => Promise<T>,
    private readonly ttlMs: number,
    private readonly now: () => number,
    private readonly onError: (error: unknown) => void,
  ) {}

  async get(): Promise<T> {
    if (this.value === undefined) return this.reload();
    if (this.now() - this.value.atMs >= this.ttlMs) {
      this.reload().catch((error: unknown) => this.onError(error));
    }
    return this.value.data;
  }

  private reload(): Promise<T> {
    this.loading ??= this.load()
      .then((data) => {
        this.value = { data, atMs: this.now() };
        return data;
      })
      .finally(() => (this.loading = undefined));
    return this.loading;
  }
}
