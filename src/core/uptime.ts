/**
 * Uptime: the fraction of a trailing window during which a node was online.
 *
 * Definition. For a window of length W ending at `now`, the *observed* part is
 * [max(now − W, registeredAt), now]. Uptime = (online time inside the observed part) / (its length).
 * The window starts at registration at the earliest so a new node is not penalised for time before
 * it existed: a node registered 1 h ago and online all that hour has a 24 h uptime of 1, not 1/24.
 * No observed time (now ≤ registeredAt, or W ≤ 0) gives 0: nothing has been earned yet.
 *
 * Input is the node's recorded online intervals (from the event history, DESIGN.md §4). They may be
 * unsorted and overlap (e.g. a reconnect recorded before the previous disconnect); they are clipped
 * to the observed part and merged, so no instant is counted twice. An interval with `endMs: null`
 * is still open and runs to `now`. Inverted intervals (end < start) count as empty.
 *
 * Coordinator downtime is the caller's business: this function trusts the intervals it is given.
 * A caller that does not want to blame nodes for an outage of the coordinator itself should close
 * or extend intervals accordingly before calling.
 *
 * Cost: O(n log n) for n intervals (one sort), no allocation proportional to time.
 */

/** A span during which a node was online. `endMs` null = still online. Times are epoch ms. */
export interface OnlineInterval {
  readonly startMs: number;
  readonly endMs: number | null;
}

/** The trailing windows the explorer and the placement filter use, in ms. */
export const UPTIME_WINDOWS_MS = {
  "24h": 86_400_000,
  "7d": 604_800_000,
  "30d": 2_592_000_000,
} as const;
export type UptimeWindow = keyof typeof UPTIME_WINDOWS_MS;

/** Options for {@link uptimeRatio}. All times are epoch ms. */
export interface UptimeRatioOptions {
  /** End of the window (the current instant). */
  readonly nowMs: number;
  /** Length of the trailing window, in ms. */
  readonly windowMs: number;
  /** When the node registered; the observed part never starts before it. */
  readonly registeredAtMs: number;
}

/**
 * Fraction in [0,1] of the observed part of the window [nowMs − windowMs, nowMs] during which the
 * node was online. See the header comment for the definition.
 */
export function uptimeRatio(
  intervals: readonly OnlineInterval[],
  opts: UptimeRatioOptions,
): number {
  const { nowMs } = opts;
  const fromMs = Math.max(nowMs - opts.windowMs, opts.registeredAtMs);
  const observedMs = nowMs - fromMs;
  if (!(observedMs > 0)) return 0;

  const clipped: [number, number][] = [];
  for (const interval of intervals) {
    const startMs = Math.max(interval.startMs, fromMs);
    const endMs = Math.min(interval.endMs ?? nowMs, nowMs);
    if (endMs > startMs) clipped.push([startMs, endMs]);
  }
  clipped.sort((a, b) => a[0] - b[0]);

  let onlineMs = 0;
  let coveredUntilMs = fromMs;
  for (const [startMs, endMs] of clipped) {
    const from = Math.max(startMs, coveredUntilMs);
    if (endMs > from) {
      onlineMs += endMs - from;
      coveredUntilMs = endMs;
    }
  }
  return Math.min(1, onlineMs / observedMs);
}

/** Uptime over each of {@link UPTIME_WINDOWS_MS}, as {@link uptimeRatio} computes it. */
export function uptimeSummary(
  intervals: readonly OnlineInterval[],
  opts: { readonly nowMs: number; readonly registeredAtMs: number },
): Record<UptimeWindow, number> {
  const ratio = (windowMs: number): number => uptimeRatio(intervals, { ...opts, windowMs });
  return {
    "24h": ratio(UPTIME_WINDOWS_MS["24h"]),
    "7d": ratio(UPTIME_WINDOWS_MS["7d"]),
    "30d": ratio(UPTIME_WINDOWS_MS["30d"]),
  };
}
