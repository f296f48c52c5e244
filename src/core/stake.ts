import { ErrorCode, TandemError, assertNever } from "./errors.ts";
import { gpuModelById } from "./gpu-catalog.ts";
import { ZERO, units, type Money } from "./money.ts";

/**
 * Stake positions (DESIGN §6 "collateral"; issue 16 item 3). A position is TDM one account stakes
 * on one node; the supplier stakes on its own nodes, anyone may delegate to any node.
 *
 *   active ──unstake──▶ unbonding ──withdraw (at or after withdrawableAt)──▶ withdrawn
 *
 * `active` and `unbonding` both count in the node's stake and both can be slashed (the cooldown
 * exists so a supplier cannot pull its stake out just before a failure is punished); only
 * `active` stake counts toward the minimum that makes a node eligible for rewards.
 */
export const StakeStatus = {
  active: "active",
  unbonding: "unbonding",
  withdrawn: "withdrawn",
} as const;
export type StakeStatus = (typeof StakeStatus)[keyof typeof StakeStatus];
export const STAKE_STATUSES = Object.values(StakeStatus) as readonly StakeStatus[];

export function isStakeStatus(value: string): value is StakeStatus {
  return (STAKE_STATUSES as readonly string[]).includes(value);
}

/** Whether stake in this status can be slashed (and counts in the node's total). */
export function isSlashable(status: StakeStatus): boolean {
  switch (status) {
    case "active":
    case "unbonding":
      return true;
    case "withdrawn":
      return false;
    default:
      return assertNever(status);
  }
}

/** `active → unbonding`; anything else is INVALID_TRANSITION (e.g. unstaking twice). */
export function unstakeTransition(from: StakeStatus): StakeStatus {
  if (from === "active") return "unbonding";
  throw new TandemError(ErrorCode.INVALID_TRANSITION, `a ${from} stake cannot be unstaked`, {
    details: { from, event: "unstake" },
  });
}

/**
 * `unbonding → withdrawn` once the cooldown is over; during it, or from another status,
 * INVALID_TRANSITION (details say when it can be withdrawn).
 */
export function withdrawTransition(
  from: StakeStatus,
  nowMs: number,
  withdrawableAtMs: number | null,
): StakeStatus {
  if (from !== "unbonding" || withdrawableAtMs === null) {
    throw new TandemError(
      ErrorCode.INVALID_TRANSITION,
      from === "active"
        ? "an active stake must be unstaked, and its cooldown waited out, before it is withdrawn"
        : `a ${from} stake cannot be withdrawn`,
      { details: { from, event: "withdraw" } },
    );
  }
  if (nowMs < withdrawableAtMs) {
    throw new TandemError(
      ErrorCode.INVALID_TRANSITION,
      `the stake is cooling down until ${new Date(withdrawableAtMs).toISOString()}`,
      {
        details: {
          from,
          event: "withdraw",
          withdrawableAt: new Date(withdrawableAtMs).toISOString(),
        },
      },
    );
  }
  return "withdrawn";
}

/** The stake a node needs to be eligible for rewards, TDM smallest units. */
export interface StakeMinimums {
  /** Per GPU of a data-center model (H100, A100, L40S, …). */
  readonly perDatacenterGpu: Money;
  /** Per GPU of a consumer or workstation model (RTX …). */
  readonly perConsumerGpu: Money;
  /** A CPU-only node, whole. */
  readonly perCpuNode: Money;
}

/** Defaults (ours; the paper gives no figure): 1,000 TDM per data-center GPU, 100 per desk GPU, 10 per CPU node. */
export const DEFAULT_STAKE_MINIMUMS: StakeMinimums = {
  perDatacenterGpu: units(1_000_000_000n),
  perConsumerGpu: units(100_000_000n),
  perCpuNode: units(10_000_000n),
};

/**
 * A node's minimum: per GPU by its model's catalog tier; a CPU-only node (no model, or no GPUs)
 * pays the CPU figure. A model the catalog does not know is priced as a data-center GPU (the
 * higher figure: an unknown claim earns no discount).
 */
export function minimumStake(
  node: { gpuModel: string | null; gpuCount: number },
  minimums: StakeMinimums = DEFAULT_STAKE_MINIMUMS,
): Money {
  if (node.gpuModel === null || node.gpuCount <= 0) return minimums.perCpuNode;
  const perGpu =
    gpuModelById(node.gpuModel)?.tier === "consumer"
      ? minimums.perConsumerGpu
      : minimums.perDatacenterGpu;
  return units(perGpu * BigInt(node.gpuCount));
}

/** Basis points in a whole: 10,000 = 100 %. */
export const BPS_PER_WHOLE = 10_000;
/** The commission a node takes on its rewards before its stakers share them: 10 %. */
export const DEFAULT_COMMISSION_BPS = 1_000;

/**
 * A commission given as a percent ("10", "12.5", "0.25") in basis points; at most two decimals and
 * at most 100 %. Else VALIDATION_FAILED.
 */
export function commissionBpsOf(percent: string): number {
  const match = /^(\d{1,3})(?:\.(\d{1,2}))?$/.exec(percent);
  const bps =
    match === null ? NaN : Number(match[1]) * 100 + Number((match[2] ?? "").padEnd(2, "0"));
  if (!Number.isInteger(bps) || bps > BPS_PER_WHOLE) {
    throw new TandemError(
      ErrorCode.VALIDATION_FAILED,
      `commission "${percent.slice(0, 20)}" is not a percent from 0 to 100 with at most 2 decimals`,
      { details: { field: "commissionPercent" } },
    );
  }
  return bps;
}

/** Basis points as a percent with two decimals: 1000 → "10.00". */
export function percentOf(bps: number): string {
  return `${Math.floor(bps / 100)}.${String(bps % 100).padStart(2, "0")}`;
}

/**
 * `total` split pro rata over `weights` (stake positions), exactly: each share is ⌊total × w / W⌋
 * and the units left over go one each to the largest remainders (ties: the earlier position), so
 * the shares sum to `total`. For reward blocks and slashes, which share one amount over a node's
 * stakers. All weights zero: nothing is shared (all shares zero).
 */
export function proRata(total: Money, weights: readonly Money[]): Money[] {
  const whole = weights.reduce((a, w) => a + w, 0n);
  if (whole <= 0n || total === ZERO) return weights.map(() => ZERO);
  const shares = weights.map((w) => (total * w) / whole);
  let left = total - shares.reduce((a, s) => a + s, 0n);
  const order = weights
    .map((w, i) => ({ i, remainder: (total * w) % whole }))
    .sort((a, b) => (a.remainder === b.remainder ? a.i - b.i : a.remainder > b.remainder ? -1 : 1));
  for (const { i } of order) {
    if (left <= 0n) break;
    shares[i] = shares[i]! + 1n;
    left -= 1n;
  }
  return shares.map((s) => units(s));
}
