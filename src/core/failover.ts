/**
 * Failover rules (DESIGN.md §5.7, issue 5): what a failed rank costs and who pays, and how much of
 * a cluster restarts when one rank moves to another node. Pure, so the scheduler and the tests
 * agree on every figure.
 */
import { min, mulDivFloor, type Money } from "./money.ts";

export type ClusterKind = "batch" | "torch" | "dask" | "ray" | "container";

/**
 * Which ranks start again when `rank` moves to a new node:
 * - `batch` and `container`: only that rank reruns (ranks are independent);
 * - `torch` and `ray`: every rank restarts with a fresh rendezvous (a collective cannot take a
 *   stranger mid-run; the job may resume from its own checkpoint in its work dir);
 * - `dask`: a new worker joins the running scheduler, unless the scheduler itself (rank 0) was
 *   lost, which restarts everything.
 */
export function restartScope(kind: ClusterKind, rank: number): "rank" | "all" {
  switch (kind) {
    case "batch":
    case "container":
      return "rank";
    case "dask":
      return rank === 0 ? "all" : "rank";
    case "torch":
    case "ray":
      return "all";
  }
}

/** Minutes of a slash: a node that fails while leased forfeits one hour of its rate on that lease. */
export const SLASH_MINUTES = 60;

/** What a failed lease forfeits: one hour of the rate it was billed at (smallest units). */
export function slashAmount(leasePricePerHour: Money): Money {
  return mulDivFloor(leasePricePerHour, BigInt(SLASH_MINUTES), 60n);
}

/** A standby's hourly rate: `percent` of the node's own price, rounded down (in the payer's favour). */
export function standbyPrice(nodePricePerHour: Money, percent: number): Money {
  return mulDivFloor(nodePricePerHour, BigInt(percent), 100n);
}

/**
 * What a node that takes over a rank is paid per hour: its own price, but never more than the
 * rank was charged at, since the escrow holds the rank's price for the remaining time and the
 * consumer never pays more than quoted. (Fresh replacements are placed under that ceiling.)
 */
export function successorPrice(nodePricePerHour: Money, rankPricePerHour: Money): Money {
  return min(nodePricePerHour, rankPricePerHour);
}

/**
 * Whole minutes a lease has served by `nowMs`: from the later of the cluster's start and the
 * lease's own start, to the earliest of now, the end of its billing (a lost or handed-over lease)
 * and the end of the paid time. A partial minute is not served time; nothing before the cluster
 * runs is billed.
 */
export function leaseServedMinutes(lease: {
  clusterStartedAtMs: number | null;
  clusterEndsAtMs: number | null;
  leaseStartedAtMs: number | null;
  billedUntilMs: number | null;
  nowMs: number;
}): number {
  if (lease.clusterStartedAtMs === null || lease.leaseStartedAtMs === null) return 0;
  const from = Math.max(lease.clusterStartedAtMs, lease.leaseStartedAtMs);
  const to = Math.min(
    lease.nowMs,
    lease.billedUntilMs ?? Number.POSITIVE_INFINITY,
    lease.clusterEndsAtMs ?? Number.POSITIVE_INFINITY,
  );
  return Math.max(0, Math.floor((to - from) / 60_000));
}
