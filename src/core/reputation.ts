/**
 * Reputation: one score from 0 to 100 per node, recomputable by anyone from the public record
 * (the node's 30-day uptime and its history: `lease-ended` and `verification-*` rows).
 *
 * Formula. Five components, each a value in [0, 1] times its weight; the weights sum to 100:
 *
 * | component    | weight | value                                                            |
 * | ------------ | ------ | ---------------------------------------------------------------- |
 * | uptime       | 30     | t·uptime30d + (1 − t)·½, t = days registered / 30, at most 1     |
 * | completion   | 30     | (completed + 1) / (completed + lost + lapsed + 2)                |
 * | failures     | 15     | ½ ^ (lost + lapsed)                                              |
 * | verification | 15     | (passed + 1) / (passed + failed + 2)                             |
 * | slashes      | 10     | ½ ^ slashes                                                      |
 *
 * score = the sum, rounded to one decimal.
 *
 * Counts are decayed: an event weighs ½ ^ (age in days / 30), so a failure a month old counts half
 * and one a year old (the horizon, {@link REPUTATION_HORIZON_DAYS}) not at all. A `drained` lease
 * (an announced handover) counts for nothing. A `lost` lease (failed while leased) counts in
 * completion, in failures and, being slashed, in slashes; a `lapsed` one (reserved, never accepted)
 * in completion and failures. Any lease whose record carries a slash counts in slashes.
 *
 * Priors. Completion and verification start from two pseudo-events at ½ (Laplace's rule), so one
 * good lease gives ⅔, not 1; uptime is trusted in proportion to how much of its 30-day window the
 * node has existed, the rest taken as ½. A node with no history therefore scores
 * 30·½ + 30·½ + 15 + 15·½ + 10 = {@link REPUTATION_PRIOR} = 62.5: neither trusted nor suspect. Because
 * of the priors no node reaches 100 exactly: with full uptime, a lease completed every day and a
 * verification passed every week it sits at 97.6.
 *
 * Properties (reputation.property.test.ts): the score stays in [0, 100]; adding a lost or lapsed
 * lease, a slash or a failed verification never raises it; adding a clean completed lease, a passed
 * verification or more uptime never lowers it; the same failure weighs less the older it is.
 */

/** Points of each component at full value; they sum to 100. */
export const REPUTATION_WEIGHTS = {
  uptime: 30,
  completion: 30,
  failures: 15,
  verification: 15,
  slashes: 10,
} as const;
export type ReputationComponentName = keyof typeof REPUTATION_WEIGHTS;

/** An event's weight halves every this many days. */
export const REPUTATION_HALF_LIFE_DAYS = 30;
/** Events older than this many days are ignored (their weight is below 1/4,000). */
export const REPUTATION_HORIZON_DAYS = 365;
/** Days of existence after which the 30-day uptime is taken at face value. */
export const REPUTATION_UPTIME_TRUST_DAYS = 30;
/** The value a component takes with no evidence (uptime, completion, verification). */
export const REPUTATION_PRIOR_VALUE = 0.5;
/** Pseudo-events at {@link REPUTATION_PRIOR_VALUE} added to completion and verification ratios. */
export const REPUTATION_PRIOR_EVENTS = 2;
/** The score of a node without any history or observed uptime. */
export const REPUTATION_PRIOR = 62.5;

const DAY_MS = 86_400_000;

/** How a lease ended for its node (mirrors the `lease-ended` history row's `outcome`). */
export type ReputationLeaseOutcome = "completed" | "lost" | "lapsed" | "drained";

export interface ReputationLease {
  /** When the lease ended, epoch ms. */
  readonly atMs: number;
  readonly outcome: ReputationLeaseOutcome;
  /** Whether the node was slashed for it. */
  readonly slashed: boolean;
}

export interface ReputationVerification {
  /** When the result was recorded, epoch ms. */
  readonly atMs: number;
  readonly passed: boolean;
}

export interface ReputationInputs {
  /** 30-day uptime, 0..1 (clamped). */
  readonly uptime30d: number;
  /** When the node registered, epoch ms: how far its uptime is trusted. */
  readonly registeredAtMs: number;
  readonly leases: readonly ReputationLease[];
  readonly verifications: readonly ReputationVerification[];
  /** The instant the score is for, epoch ms. */
  readonly nowMs: number;
}

export interface ReputationComponent {
  /** Points at full value. */
  readonly weight: number;
  /** 0..1. */
  readonly value: number;
  /** weight × value, unrounded. */
  readonly points: number;
}

/** The decayed counts the components are computed from. */
export interface ReputationEvidence {
  /** 0..1: the share of uptime's value taken from the node's own figure. */
  readonly uptimeTrust: number;
  readonly completed: number;
  readonly lost: number;
  readonly lapsed: number;
  readonly drained: number;
  readonly slashes: number;
  readonly verificationsPassed: number;
  readonly verificationsFailed: number;
}

export interface Reputation {
  /** 0..100, one decimal. */
  readonly score: number;
  readonly components: Readonly<Record<ReputationComponentName, ReputationComponent>>;
  readonly evidence: ReputationEvidence;
}

/** An event's weight at `nowMs`: 1 now (or in the future), ½ a half-life ago, 0 past the horizon. */
export function reputationDecay(atMs: number, nowMs: number): number {
  const ageDays = Math.max(0, nowMs - atMs) / DAY_MS;
  if (!(ageDays <= REPUTATION_HORIZON_DAYS)) return 0;
  return 0.5 ** (ageDays / REPUTATION_HALF_LIFE_DAYS);
}

/** The node's reputation at `inputs.nowMs`; see the header comment for the formula. */
export function reputation(inputs: ReputationInputs): Reputation {
  const { nowMs } = inputs;
  const count = { completed: 0, lost: 0, lapsed: 0, drained: 0, slashes: 0 };
  for (const lease of inputs.leases) {
    const w = reputationDecay(lease.atMs, nowMs);
    count[lease.outcome] += w;
    if (lease.slashed) count.slashes += w;
  }
  let passed = 0;
  let failed = 0;
  for (const v of inputs.verifications) {
    const w = reputationDecay(v.atMs, nowMs);
    if (v.passed) passed += w;
    else failed += w;
  }

  const existedDays = Math.max(0, nowMs - inputs.registeredAtMs) / DAY_MS;
  const trust = clamp01(existedDays / REPUTATION_UPTIME_TRUST_DAYS);
  const failures = count.lost + count.lapsed;
  const values: Record<ReputationComponentName, number> = {
    uptime: trust * clamp01(inputs.uptime30d) + (1 - trust) * REPUTATION_PRIOR_VALUE,
    completion: withPrior(count.completed, count.completed + failures),
    failures: 0.5 ** failures,
    verification: withPrior(passed, passed + failed),
    slashes: 0.5 ** count.slashes,
  };

  let total = 0;
  const components = {} as Record<ReputationComponentName, ReputationComponent>;
  for (const name of Object.keys(REPUTATION_WEIGHTS) as ReputationComponentName[]) {
    const weight = REPUTATION_WEIGHTS[name];
    const value = values[name];
    components[name] = { weight, value, points: weight * value };
    total += weight * value;
  }
  return {
    score: Math.min(100, Math.max(0, Math.round(total * 10) / 10)),
    components,
    evidence: {
      uptimeTrust: trust,
      ...count,
      verificationsPassed: passed,
      verificationsFailed: failed,
    },
  };
}

function withPrior(good: number, all: number): number {
  return (
    (good + REPUTATION_PRIOR_VALUE * REPUTATION_PRIOR_EVENTS) / (all + REPUTATION_PRIOR_EVENTS)
  );
}

/** NaN (a corrupt figure) counts as 0. */
function clamp01(x: number): number {
  return x > 0 ? Math.min(1, x) : 0;
}
