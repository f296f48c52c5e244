import type { Clock } from "./clock.ts";

/**
 * Heartbeat failure detector. A node is dead once `missedHeartbeats` intervals pass without a
 * beat: with the defaults (2 s, 3 missed) a silent worker is declared dead 6 s after its last
 * beat, plus at most one sweep period. Beats only touch memory (a map write), so 10,000 workers at
 * 2 Hz cost no database traffic; the store hears about a node only when its status changes.
 */
export interface FailureDetectorOptions {
  clock: Clock;
  /** Expected interval between a worker's heartbeats, ms (default 2000). */
  heartbeatIntervalMs: number;
  /** Intervals without a beat before the node counts as dead (default 3). */
  missedHeartbeats: number;
  /**
   * Extra time a node restored after a coordinator restart gets to come back, ms (default 0):
   * its worker may be in reconnect backoff (up to 10 s by default) when the coordinator returns.
   */
  restartGraceMs?: number;
}

/** A node whose deadline passed. */
export interface DeadNode {
  nodeId: string;
  /** Its last beat, or for a restored node never heard from since, when it was last seen before. */
  lastBeatMs: number;
  /**
   * True when it was restored after a coordinator restart and never heard from since: nobody can
   * tell whether it failed or only the coordinator was away, so it is not the supplier's fault.
   */
  unheardSinceRestart: boolean;
}

export class FailureDetector<T = unknown> {
  private readonly lastBeatMs = new Map<string, number>();
  private readonly latest = new Map<string, T>();
  /** Restored nodes' last evidence of life from before a coordinator restart (see `watch`). */
  private readonly restoredMs = new Map<string, number>();

  constructor(private readonly options: FailureDetectorOptions) {}

  /** How long after its last beat a node is declared dead, ms. */
  get deadlineMs(): number {
    return this.options.heartbeatIntervalMs * this.options.missedHeartbeats;
  }

  get size(): number {
    return this.lastBeatMs.size;
  }

  /**
   * Starts watching a node (a fresh connection counts as a beat). `restoredLastSeenMs` is for a
   * node restored after a coordinator restart: when it was last heard of before. Its deadline
   * still runs from now (it had no coordinator to beat to), but until it beats again it counts as
   * last seen then, not at the restart, so a node that died during the outage is not paid for it.
   */
  watch(nodeId: string, restoredLastSeenMs?: number): void {
    this.lastBeatMs.set(nodeId, this.options.clock.now());
    if (restoredLastSeenMs === undefined) this.restoredMs.delete(nodeId);
    else this.restoredMs.set(nodeId, restoredLastSeenMs);
  }

  beat(nodeId: string, payload: T): void {
    if (!this.lastBeatMs.has(nodeId)) return;
    this.lastBeatMs.set(nodeId, this.options.clock.now());
    this.latest.set(nodeId, payload);
    this.restoredMs.delete(nodeId);
  }

  forget(nodeId: string): void {
    this.lastBeatMs.delete(nodeId);
    this.latest.delete(nodeId);
    this.restoredMs.delete(nodeId);
  }

  /** When the node was last heard from; undefined when it is not watched. */
  lastHeardMs(nodeId: string): number | undefined {
    return this.restoredMs.get(nodeId) ?? this.lastBeatMs.get(nodeId);
  }

  /**
   * Up to when the node has served, as far as anyone can tell: now while it beats on time (within
   * two intervals), else its last beat; a restored node that has not beaten since, the time it
   * was last seen before the restart. Undefined when it is not watched.
   */
  servedUntilMs(nodeId: string): number | undefined {
    const restored = this.restoredMs.get(nodeId);
    if (restored !== undefined) return restored;
    const last = this.lastBeatMs.get(nodeId);
    if (last === undefined) return undefined;
    const now = this.options.clock.now();
    return now - last <= 2 * this.options.heartbeatIntervalMs ? now : last;
  }

  isWatched(nodeId: string): boolean {
    return this.lastBeatMs.has(nodeId);
  }

  /** Restored after a restart and not heard from since: not to be placed or promoted yet. */
  awaitingContact(nodeId: string): boolean {
    return this.restoredMs.has(nodeId);
  }

  lastPayload(nodeId: string): T | undefined {
    return this.latest.get(nodeId);
  }

  /**
   * Puts back a node `sweep` answered whose verdict could not be recorded (the store was locked or
   * gone): the next sweep answers it again, exactly as before, unless it beats meanwhile.
   */
  judgeAgain(dead: DeadNode): void {
    if (this.lastBeatMs.has(dead.nodeId)) return;
    if (dead.unheardSinceRestart) {
      const dueMs = this.deadlineMs + (this.options.restartGraceMs ?? 0);
      this.lastBeatMs.set(dead.nodeId, this.options.clock.now() - dueMs);
      this.restoredMs.set(dead.nodeId, dead.lastBeatMs);
    } else {
      this.lastBeatMs.set(dead.nodeId, dead.lastBeatMs);
    }
  }

  /** Removes and answers every node whose deadline has passed. */
  sweep(): DeadNode[] {
    const now = this.options.clock.now();
    const graceMs = this.options.restartGraceMs ?? 0;
    const dead: DeadNode[] = [];
    for (const [nodeId, last] of this.lastBeatMs) {
      const restored = this.restoredMs.get(nodeId);
      const deadlineMs = restored === undefined ? this.deadlineMs : this.deadlineMs + graceMs;
      if (now - last >= deadlineMs)
        dead.push({
          nodeId,
          lastBeatMs: restored ?? last,
          unheardSinceRestart: restored !== undefined,
        });
    }
    for (const { nodeId } of dead) this.forget(nodeId);
    return dead;
  }
}
