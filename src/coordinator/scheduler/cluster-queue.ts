/**
 * Work on one cluster runs one piece at a time, in arrival order, on this coordinator: a
 * failover, a worker's messages and the tick never interleave on a cluster. Across replicas the
 * database's compare-and-set writes (./cluster-lifecycle.ts) and unique indexes guard instead.
 */
export class ClusterQueue {
  private readonly queues = new Map<string, Promise<unknown>>();

  /** Runs `work` after every earlier piece of work on the same cluster has finished. */
  serial<T>(clusterId: string, work: () => Promise<T>): Promise<T> {
    const previous = this.queues.get(clusterId) ?? Promise.resolve();
    const next = previous.then(work, work);
    const settled = next.catch(() => undefined);
    this.queues.set(clusterId, settled);
    void settled.then(() => {
      if (this.queues.get(clusterId) === settled) this.queues.delete(clusterId);
    });
    return next;
  }

  /**
   * Runs `work` once while holding the queue of every cluster in `clusterIds`, as `serial` holds
   * one: it starts when each queue has reached it, and work queued behind it waits until it ends.
   */
  serialAll<T>(clusterIds: readonly string[], work: () => Promise<T>): Promise<T> {
    let release!: () => void;
    const held = new Promise<void>((resolve) => (release = resolve));
    const reached = clusterIds.map(
      (id) =>
        new Promise<void>((arrive) => {
          void this.serial(id, () => {
            arrive();
            return held;
          });
        }),
    );
    return Promise.all(reached)
      .then(work)
      .finally(() => release());
  }

  /** Resolves once the work under way on every cluster has ended (before the store closes). */
  async idle(): Promise<void> {
    await Promise.allSettled([...this.queues.values()]);
  }
}
