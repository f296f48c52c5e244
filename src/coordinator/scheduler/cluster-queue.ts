/**
 * Holds clusters across processes, for the ClusterQueue below:
 * the queue orders the work on a cluster within one coordinator, and these locks order it between
 * replicas, so a worker's exit on one replica, a failover run by the leader and a deploy through a
 * third never interleave on one cluster. The PostgreSQL ones are ../replicas/cluster-locks.ts.
 */
export interface ClusterLocks {
  /** Resolves once every cluster in `clusterIds` is held here; the answer lets them go. */
  hold(clusterIds: readonly string[]): Promise<() => void>;
  close(): Promise<void>;
}

/** One coordinator (SQLite, or a lone process): its queue is the only order there is. */
export const PROCESS_LOCAL: ClusterLocks = {
  hold: () => Promise.resolve(() => undefined),
  close: () => Promise.resolve(),
};

/**
 * Work on one cluster runs one piece at a time, in arrival order: a failover, a worker's messages
 * and the tick never interleave on a cluster. Within this coordinator a promise chain per cluster
 * orders it; between replicas on one PostgreSQL, `locks` hold the
 * cluster for the length of each piece, taken once the piece's turn has come here.
 */
export class ClusterQueue {
  private readonly queues = new Map<string, Promise<unknown>>();

  constructor(private readonly locks: ClusterLocks = PROCESS_LOCAL) {}

  /** Runs `work` after every earlier piece of work on the same cluster has finished. */
  serial<T>(clusterId: string, work: () => Promise<T>): Promise<T> {
    return this.enqueue(clusterId, () => this.holding([clusterId], work));
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
          void this.enqueue(id, () => {
            arrive();
            return held;
          });
        }),
    );
    return Promise.all(reached)
      .then(() => this.holding(clusterIds, work))
      .finally(() => release());
  }

  /** Resolves once the work under way on every cluster has ended (before the store closes). */
  async idle(): Promise<void> {
    await Promise.allSettled([...this.queues.values()]);
  }

  private async holding<T>(clusterIds: readonly string[], work: () => Promise<T>): Promise<T> {
    const letGo = await this.locks.hold(clusterIds);
    try {
      return await work();
    } finally {
      letGo();
    }
  }

  /** Runs `work` once the work queued here before it on `clusterId` has ended. */
  private enqueue<T>(clusterId: string, work: () => Promise<T>): Promise<T> {
    const previous = this.queues.get(clusterId) ?? Promise.resolve();
    const next = previous.then(work, work);
    const settled = next.catch(() => undefined);
    this.queues.set(clusterId, settled);
    void settled.then(() => {
      if (this.queues.get(clusterId) === settled) this.queues.delete(clusterId);
    });
    return next;
  }
}
