import type { Clock } from "./clock.ts";

/**
 * Heartbeat failure detector. Two signals, one invariant.
 *
 * - Silence: a node is dead once `missedHeartbeats` intervals pass without a beat. With the
 *   defaults (1 s, 3 missed) a silent worker (SIGSTOP, a pulled cable) is declared dead 3 s after
 *   its last beat, plus at most one sweep period (a quarter interval).
 * - A closed connection (the worker process died and its kernel closed the TCP stream, or the
 *   network reset it) is a strong signal: the node is declared dead at
 *   max(close + reconnect grace, last beat + fencing bound), unless it connects again first; a
 *   reconnect before then changes nothing.
 *
 * The invariant (DESIGN.md §5.7, a rank never runs twice): no node is declared dead before every
 * job on it has certainly stopped. A worker stops its jobs once it has had no proof of contact
 * for `fenceAfterMs` (src/worker/contact-clock.ts: the send time of its newest acknowledged ping,
 * which is never later than the coordinator's receipt of its last beat), checked every quarter
 * interval; its fencing watchdog ends them half an interval after that at the latest, even when
 * the agent itself is frozen. So every job has stopped by
 *   last beat + fenceAfterMs + interval / 2            (the fencing bound, less a margin)
 * and we declare nothing before last beat + fenceAfterMs + ¾ interval (`fencedBoundMs`): a
 * quarter interval is left for the kill. The silence deadline (fenceAfterMs + one interval) keeps
 * that and more.
 *
 * A close does not shorten this bound, and the worker does not fence at once on a close: the
 * coordinator cannot tell a dead worker from a live one whose link was cut (a reset by a load
 * balancer or NAT may reach one end only, and a partitioned worker may never see it), and a
 * worker fencing on every close would end every job at each coordinator restart. What the close
 * buys is certainty: the node is declared at the fencing bound instead of waiting out the margin
 * that silence needs against a slow network, and at a precise time rather than whenever the
 * missed beats add up. With the defaults, SIGKILL of a worker is declared 2.75 s after its last
 * beat (≈ 2.25 s after the kill on average), silence 3 s after it.
 *
 * Beats only touch memory (a map write), so 10,000 workers at 1 Hz cost no database traffic; the
 * store hears about a node only when its status changes.
 */
export interface FailureDetectorOptions {
  clock: Clock;
  /** Expected interval between a worker's heartbeats, ms (default 1000). */
  heartbeatIntervalMs: number;
  /** Intervals without a beat before the node counts as dead (default 3). */
  missedHeartbeats: number;
  /**
   * Extra time a node restored after a coordinator restart gets to come back, ms (default 0):
   * its worker may be in reconnect backoff (up to 10 s by default) when the coordinator returns.
   */
  restartGraceMs?: number;
  /**
   * How long a node whose connection closed gets to connect again, at least, ms (default one
   * interval); it is never declared before the fencing bound either (see above).
   */
  reconnectGraceMs?: number;
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
  /** When its connection closed, if it was declared for that (not for silence). */
  closedAtMs?: number;
}

export class FailureDetector<T = unknown> {
  private readonly lastBeatMs = new Map<string, number>();
  private readonly latest = new Map<string, T>();
  /** Restored nodes' last evidence of life from before a coordinator restart (see `watch`). */
  private readonly restoredMs = new Map<string, number>();
  /** Nodes whose connection closed, and when: declared sooner unless they connect again. */
  private readonly closedMs = new Map<string, number>();

  constructor(private readonly options: FailureDetectorOptions) {}

  /** How long after its last beat a node is declared dead, ms. */
  get deadlineMs(): number {
    return this.options.heartbeatIntervalMs * this.options.missedHeartbeats;
  }

  /**
   * What the node's worker was told as its fencing budget (`welcome.fenceAfterMs`), ms: one
   * interval short of the silence deadline.
   */
  get fenceAfterMs(): number {
    return this.options.heartbeatIntervalMs * Math.max(1, this.options.missedHeartbeats - 1);
  }

  /**
   * How long after its last beat every job of a node is certainly stopped by its own fencing,
   * with a quarter interval to spare, ms: the soonest a closed connection is declared dead.
   */
  get fencedBoundMs(): number {
    const intervalMs = this.options.heartbeatIntervalMs;
    return Math.min(this.deadlineMs, this.fenceAfterMs + Math.ceil((intervalMs * 3) / 4));
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
    this.closedMs.delete(nodeId);
    if (restoredLastSeenMs === undefined) this.restoredMs.delete(nodeId);
    else this.restoredMs.set(nodeId, restoredLastSeenMs);
  }

  beat(nodeId: string, payload: T): void {
    if (!this.lastBeatMs.has(nodeId)) return;
    this.lastBeatMs.set(nodeId, this.options.clock.now());
    this.latest.set(nodeId, payload);
    this.restoredMs.delete(nodeId);
  }

  /**
   * The node's connection closed without a goodbye: it is declared dead at the fencing bound (or
   * after the reconnect grace, whichever is later) unless `watch` sees it connect again first.
   */
  disconnected(nodeId: string): void {
    if (!this.lastBeatMs.has(nodeId) || this.closedMs.has(nodeId)) return;
    this.closedMs.set(nodeId, this.options.clock.now());
  }

  /** How long until a node whose connection closed is due, ms; undefined when it is not closed. */
  closedDueInMs(nodeId: string): number | undefined {
    const closedAt = this.closedMs.get(nodeId);
    const last = this.lastBeatMs.get(nodeId);
    if (closedAt === undefined || last === undefined) return undefined;
    const now = this.options.clock.now();
    const graceMs = this.options.reconnectGraceMs ?? this.options.heartbeatIntervalMs;
    return Math.max(0, closedAt + graceMs - now, last + this.fencedBoundMs - now);
  }

  forget(nodeId: string): void {
    this.lastBeatMs.delete(nodeId);
    this.closedMs.delete(nodeId);
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
      if (dead.closedAtMs !== undefined) this.closedMs.set(dead.nodeId, dead.closedAtMs);
    }
  }

  /** Removes and answers every node whose deadline has passed. */
  sweep(): DeadNode[] {
    const now = this.options.clock.now();
    const graceMs = this.options.restartGraceMs ?? 0;
    const dead: DeadNode[] = [];
    for (const [nodeId, last] of this.lastBeatMs) {
      const restored = this.restoredMs.get(nodeId);
      const closedAt = this.closedMs.get(nodeId);
      if (restored === undefined && closedAt !== undefined && this.closedDue(closedAt, last, now))
        dead.push({ nodeId, lastBeatMs: last, unheardSinceRestart: false, closedAtMs: closedAt });
      else if (now - last >= (restored === undefined ? this.deadlineMs : this.deadlineMs + graceMs))
        dead.push({
          nodeId,
          lastBeatMs: restored ?? last,
          unheardSinceRestart: restored !== undefined,
        });
    }
    for (const { nodeId } of dead) this.forget(nodeId);
    return dead;
  }

  private closedDue(closedAtMs: number, lastBeatMs: number, nowMs: number): boolean {
    const reconnectGraceMs = this.options.reconnectGraceMs ?? this.options.heartbeatIntervalMs;
    return nowMs - closedAtMs >= reconnectGraceMs && nowMs - lastBeatMs >= this.fencedBoundMs;
  }
}
