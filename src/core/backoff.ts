/**
 * Reconnect delay with "full jitter" (AWS architecture blog, 2015): a random delay in
 * [0, min(maxMs, baseMs·2^attempt)]. Jitter keeps 10,000 workers that lost the same coordinator
 * from reconnecting in lockstep; the cap bounds how long a worker stays away after an outage.
 */
export interface BackoffOptions {
  /** Delay scale of the first retry, ms. */
  baseMs: number;
  /** Upper bound of any delay, ms. */
  maxMs: number;
}

export function backoffDelayMs(
  attempt: number,
  options: BackoffOptions,
  random: () => number,
): number {
  const ceiling = Math.min(options.maxMs, options.baseMs * 2 ** Math.min(attempt, 30));
  return Math.floor(random() * ceiling);
}
