/**
 * Self-fencing (DESIGN.md §5.7): how long this worker may have been out of the coordinator's
 * sight, measured so that it never thinks itself seen when it was not.
 *
 * The coordinator declares a node dead once it has received no heartbeat for
 * heartbeatIntervalMs × missedHeartbeats (3 s by default) and gives its ranks to other nodes;
 * when the node's connection closed, already `fenceAfterMs` + ¾ interval after its last beat
 * (core/failure-detector.ts). It tells the worker `fenceAfterMs` = one interval less than the
 * silence deadline (2 s): a worker that has no proof of being seen for that long stops every job
 * by itself, so a rank never runs on two nodes at once. A closed link does not fence at once: the
 * coordinator may be restarting, and the budget runs on whether or not the link is up.
 *
 * What counts as proof: a WebSocket ping sent with each heartbeat whose pong came back. The pong
 * shows that the heartbeat sent just before it (same TCP stream) reached the coordinator, which
 * then cannot declare the node dead before that ping's SEND time + its full budget. So contact is
 * dated at the send time of the newest acknowledged ping, never at the pong's arrival; a `welcome`
 * dates it at the send time of the `auth` it answers (the coordinator starts watching the node
 * after receiving that). Other messages from the coordinator prove nothing about our heartbeats
 * and do not count. The clock keeps running while the link is down: that is the case that matters.
 *
 * The worker checks every heartbeatIntervalMs / 4, so it fences at most a quarter interval late,
 * and gives its jobs a quarter interval to end (then kills them): all are gone half an interval
 * after the budget, a quarter interval before the soonest the coordinator may move them.
 */
export class ContactClock {
  private lastContactMs: number | undefined;
  private budgetMs = Number.POSITIVE_INFINITY;
  /** Send times of the pings not acknowledged yet, by ping number. */
  private readonly pending = new Map<number, number>();

  /** A `welcome` answered the `auth` sent at `authSentAtMs`; `fenceAfterMs` is its budget. */
  welcomed(authSentAtMs: number, fenceAfterMs: number): void {
    this.lastContactMs = authSentAtMs;
    this.budgetMs = fenceAfterMs;
    this.pending.clear();
  }

  pingSent(ping: number, atMs: number): void {
    this.pending.set(ping, atMs);
  }

  /** A pong for `ping` came back: it and every earlier ping on this connection were received. */
  pongReceived(ping: number): void {
    const sentAtMs = this.pending.get(ping);
    if (sentAtMs === undefined) return;
    for (const key of this.pending.keys()) if (key <= ping) this.pending.delete(key);
    this.lastContactMs = Math.max(this.lastContactMs ?? sentAtMs, sentAtMs);
  }

  /** Milliseconds since the last proof of contact; undefined before the first welcome. */
  silentMs(nowMs: number): number | undefined {
    return this.lastContactMs === undefined ? undefined : nowMs - this.lastContactMs;
  }

  /** True once the silence has reached the fencing budget: every job must stop. */
  overdue(nowMs: number): boolean {
    const silent = this.silentMs(nowMs);
    return silent !== undefined && silent >= this.budgetMs;
  }

  get fenceAfterMs(): number {
    return this.budgetMs;
  }
}
