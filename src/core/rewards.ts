import { gpuModelById } from "./gpu-catalog.ts";
import { ZERO, units, type Money } from "./money.ts";
import { BPS_PER_WHOLE, proRata } from "./stake.ts";

/**
 * Reward blocks (DESIGN §6 "rewards"; issue 16 item 4), the pure part: who of the nominated nodes
 * is eligible, how much proven capacity each weighs, and how one hour's emission splits into the
 * node shares, the supplier's commission and the stakers' pro-rata shares — exact to the unit.
 *
 * Capacity is peak FP32 throughput in milli-TFLOPS, one measure for every node: a GPU node weighs
 * its catalog model's FP32 TFLOPS × its verified GPU count (not its tensor figure, which favours
 * data-center cards ~10× for the same FP32 work, nor its price, which the supplier sets); a
 * CPU-only node weighs its cores × 0.1 TFLOPS (one AVX2 core: 2 FMA units × 8 lanes × 2 flops ×
 * ~3 GHz ≈ 96 GFLOPS). A model the catalog does not know has no proven capacity.
 */

/** A CPU core's peak FP32, milli-TFLOPS (0.1 TFLOPS). */
export const CPU_CORE_MILLI_TFLOPS = 100n;

/** Why a nominated node earned nothing in a block, in the order they are checked. */
export const RefusalReason = {
  notVerified: "not-verified",
  flagged: "flagged",
  notOnlineAllHour: "not-online-all-hour",
  stakeBelowMinimum: "stake-below-minimum",
  noProvenCapacity: "no-proven-capacity",
} as const;
export type RefusalReason = (typeof RefusalReason)[keyof typeof RefusalReason];

/** A node's proven capacity, milli-TFLOPS FP32; 0 when it has none the catalog can vouch for. */
export function provenCapacity(node: {
  gpuModel: string | null;
  gpuCount: number;
  cpuCores: number;
}): bigint {
  if (node.gpuModel === null || node.gpuCount <= 0)
    return BigInt(Math.max(0, Math.floor(node.cpuCores))) * CPU_CORE_MILLI_TFLOPS;
  const model = gpuModelById(node.gpuModel);
  if (model === undefined) return 0n;
  return BigInt(Math.round(model.fp32Tflops * 1000)) * BigInt(node.gpuCount);
}

/** What a block knows of one nominated node. */
export interface RewardCandidate {
  readonly verified: boolean;
  readonly flagged: boolean;
  readonly onlineAllHour: boolean;
  readonly activeStake: Money;
  readonly minimumStake: Money;
  readonly capacity: bigint;
}

/** The first reason the node is refused, or null when it is eligible. */
export function refusalOf(node: RewardCandidate): RefusalReason | null {
  if (!node.verified) return RefusalReason.notVerified;
  if (node.flagged) return RefusalReason.flagged;
  if (!node.onlineAllHour) return RefusalReason.notOnlineAllHour;
  if (node.activeStake < node.minimumStake || node.activeStake <= 0n)
    return RefusalReason.stakeBelowMinimum;
  if (node.capacity <= 0n) return RefusalReason.noProvenCapacity;
  return null;
}

/** One eligible node's share of a block, split. */
export interface NodeReward {
  /** The node's whole share: commission + Σ stakers. */
  readonly share: Money;
  readonly commission: Money;
  /** Per active position, in the order given; they sum to share − commission. */
  readonly stakers: Money[];
}

/**
 * Splits `share` for one node: ⌊share × bps / 10,000⌋ to the supplier, the rest pro rata over the
 * active positions' balances (core/stake.ts `proRata`). With no position to share it, the supplier
 * takes all (only possible with a zero minimum).
 */
export function splitNodeShare(
  share: Money,
  commissionBps: number,
  positions: readonly Money[],
): NodeReward {
  const commission = units((share * BigInt(commissionBps)) / BigInt(BPS_PER_WHOLE));
  const rest = units(share - commission);
  if (positions.every((p) => p <= 0n))
    return { share, commission: share, stakers: positions.map(() => ZERO) };
  return { share, commission, stakers: proRata(rest, positions) };
}

/** The hour's emission split over the eligible nodes by capacity; all of it, exactly. */
export function nodeShares(emission: Money, capacities: readonly bigint[]): Money[] {
  return proRata(
    emission,
    capacities.map((c) => units(c)),
  );
}

/**
 * Whether online intervals (ends null: still online) together cover [fromMs, toMs) without a gap:
 * "online the whole hour". Overlapping or touching intervals join.
 */
export function coversWhole(
  intervals: ReadonlyArray<{ startMs: number; endMs: number | null }>,
  fromMs: number,
  toMs: number,
): boolean {
  const sorted = [...intervals].sort((a, b) => a.startMs - b.startMs);
  let reached = fromMs;
  for (const { startMs, endMs } of sorted) {
    if (startMs > reached) break;
    reached = Math.max(reached, endMs ?? Number.POSITIVE_INFINITY);
    if (reached >= toMs) return true;
  }
  return reached >= toMs;
}
