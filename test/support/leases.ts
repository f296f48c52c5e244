import type { Kysely } from "kysely";
import type { RankEnd, RankEndCause } from "../../src/core/rank-end-cause.ts";
import {
  appendLeaseOutcome,
  type LeaseOutcome,
} from "../../src/coordinator/registry/node-history.ts";
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
