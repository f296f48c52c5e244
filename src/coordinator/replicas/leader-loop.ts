import type { FastifyBaseLogger } from "fastify";
import type { Leadership } from "./leader-election.ts";

/**
 * A singleton loop (DESIGN.md §7): every `everyMs` it runs `task` on the leader only (its writes
 * fenced by the leader's term), one run at a time, skipping a beat while the last run is under way;
 * errors are logged and the next beat tries again. `stop()` aborts the run under way (a task may
 * end between two batches when its signal fires) and waits for it.
 */
export class LeaderLoop {
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<void> | undefined;
  private readonly stopping = new AbortController();

  constructor(
    private readonly name: string,
    private readonly task: (signal: AbortSignal) => Promise<void>,
    private readonly deps: {
      leadership: Pick<Leadership, "asLeader">;
      logger: FastifyBaseLogger;
    },
    private readonly everyMs: number,
  ) {}

  /** Beats every `everyMs`; `{ now: true }` runs once at once too (work missed while down). */
  start(options: { now?: boolean } = {}): void {
    if (options.now === true) void this.run();
    this.timer = setInterval(() => void this.run(), this.everyMs);
    this.timer.unref();
  }

  /** One run unless one is under way (then that one); resolves when it is done. */
  run(): Promise<void> {
    if (this.stopping.signal.aborted) return Promise.resolve();
    const { leadership, logger } = this.deps;
    this.running ??= leadership
      .asLeader(() => this.task(this.stopping.signal))
      .then(() => undefined)
      .catch((error: unknown) => logger.error({ err: error }, `${this.name} failed`))
      .finally(() => (this.running = undefined));
    return this.running;
  }

  async stop(): Promise<void> {
    clearInterval(this.timer);
    this.stopping.abort();
    await this.running;
  }
}
