import type { Insertable, Kysely } from "kysely";
import type { RankEnd, RankEndCause } from "../../src/core/rank-end-cause.ts";
import {
  appendLeaseOutcome,
  type LeaseOutcome,
} from "../../src/coordinator/registry/node-history.ts";
import type { ClusterNodesTable } from "../../src/coordinator/store/cluster-schema.ts";
import type { Database } from "../../src/coordinator/store/schema.ts";

/** The end and cause a lease of each outcome is recorded with (src/core/rank-end-cause.ts). */
const ENDS = {
  completed: { end: "cluster-ended", cause: "consumer" },
  lost: { end: "node-offline", cause: "supplier" },
  lapsed: { end: "never-accepted", cause: "supplier" },
  drained: { end: "drained", cause: "supplier" },
  released: { end: "link-lost", cause: "network" },
} as const satisfies Record<LeaseOutcome, { end: RankEnd; cause: RankEndCause }>;

/**
 * Appends a `lease-ended` row as the scheduler does when a lease ends: a `lost` lease carries a
 * slash of 1 USDC, the others none. For tests of reputation, which reads these rows.
 */
export function recordLeaseEnd(
  db: Kysely<Database>,
  nodeId: string,
  outcome: LeaseOutcome,
  atMs: number,
): Promise<void> {
  return appendLeaseOutcome(db, {
    nodeId,
    atMs,
    clusterId: "clu_00000000000000000000000000",
    seq: 0,
    outcome,
    ...ENDS[outcome],
    reason: "test",
    slashed: outcome === "lost" ? "1.000000" : null,
    currency: "USDC",
  });
}

/**
 * A lease row of `rank` as the scheduler leaves it once no longer held (`active` 0): fixture rows
 * for read-side tests and benchmarks of served time, which read only its times and node.
 */
export function releasedLeaseRow(lease: {
  clusterId: string;
  rank: number;
  nodeId: string;
  supplierAccountId: string;
  startedAt: number | null;
  billedUntil: number | null;
  endedAt: number | null;
}): Insertable<ClusterNodesTable> {
  return {
    cluster_id: lease.clusterId,
    seq: lease.rank,
    node_id: lease.nodeId,
    supplier_account_id: lease.supplierAccountId,
    rank: lease.rank,
    role: lease.rank === 0 ? "head" : "worker",
    region: "eu-west",
    zone: "eu-west-a",
    status: "released",
    reserved_until: null,
    active: 0,
    price_per_hour: 1_000_000n,
    node_price_per_hour: 1_000_000n,
    exit_code: null,
    started_at: lease.startedAt,
    billed_until: lease.billedUntil,
    ended_at: lease.endedAt,
    end_reason: null,
  };
}
