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
}

export class FailureDetector<T = unknown> {
  private readonly lastBeatMs = new Map<string, number>();
  private readonly latest = new Map<string, T>();

  constructor(private readonly options: FailureDetectorOptions) {}

  /** How long after its last beat a node is declared dead, ms. */
  get deadlineMs(): number {
    return this.options.heartbeatIntervalMs * this.options.missedHeartbeats;
  }

  get size(): number {
    return this.lastBeatMs.size;
  }

  /** Starts watching a node (a fresh connection counts as a beat). */
  watch(nodeId: string): void {
    this.lastBeatMs.set(nodeId, this.options.clock.now());
  }

  beat(nodeId: string, payload: T): void {
    if (!this.lastBeatMs.has(nodeId)) return;
    this.lastBeatMs.set(nodeId, this.options.clock.now());
    this.latest.set(nodeId, payload);
  }

  forget(nodeId: string): void {
    this.lastBeatMs.delete(nodeId);
    this.latest.delete(nodeId);
  }

  isWatched(nodeId: string): boolean {
    return this.lastBeatMs.has(nodeId);
  }

  lastPayload(nodeId: string): T | undefined {
    return this.latest.get(nodeId);
  }

  /** Removes and answers every node whose deadline has passed, with the time of its last beat. */
  sweep(): Array<{ nodeId: string; lastBeatMs: number }> {
    const now = this.options.clock.now();
    const dead: Array<{ nodeId: string; lastBeatMs: number }> = [];
    for (const [nodeId, last] of this.lastBeatMs) {
      if (now - last >= this.deadlineMs) dead.push({ nodeId, lastBeatMs: last });
    }
    for (const { nodeId } of dead) this.forget(nodeId);
    return dead;
  }
}
