import type { Kysely } from "kysely";
import type { RankEnd, RankEndCause } from "../../core/rank-end-cause.ts";
import type { Database } from "../store/schema.ts";

/** One append-only row of a node's history: who did what, when, from which status to which. */
export interface HistoryRecord {
  nodeId: string;
  atMs: number;
  actor: string;
  action: string;
  from?: string | null;
  to?: string | null;
  detail?: Record<string, unknown>;
}

export function appendHistory(db: Kysely<Database>, record: HistoryRecord): Promise<void> {
  return appendHistories(db, [record]);
}

/** How a lease ended for its node, as far as the node's record (and its reputation) goes. */
export type LeaseOutcome =
  /** The node served until the cluster ended (whatever the job's own exit code). */
  | "completed"
  /** The node failed while leased (offline, revoked, could not run its part): slashed. */
  | "lost"
  /** The node was reserved but never accepted its rank in time. */
  | "lapsed"
  /** The node gave its rank up on an announced drain: no slash. */
  | "drained"
  /**
   * The lease ended early for a cause that is not the node's (the network's, the coordinator's):
   * counts for nothing in its reputation.
   */
  | "released";

/**
 * Appends a `lease-ended` row to the node's public history: reputation is recomputed from these
 * rows, the verification rows and the node's uptime (src/core/reputation.ts).
 */
export async function appendLeaseOutcome(
  db: Kysely<Database>,
  outcome: {
    nodeId: string;
    atMs: number;
    clusterId: string;
    seq: number;
    outcome: LeaseOutcome;
    /** Who is at fault for the end (src/core/rank-end-cause.ts): only `supplier` costs the node. */
    cause: RankEndCause;
    end: RankEnd;
    reason: string;
    /** The slash taken, a 6-decimal amount in `currency`; null when none. */
    slashed: string | null;
    currency: string;
  },
): Promise<void> {
  const { nodeId, atMs, ...detail } = outcome;
  await appendHistory(db, {
    nodeId,
    atMs,
    actor: "scheduler",
    action: "lease-ended",
    detail,
  });
}

/** Appends many rows at once (a slash's one row per stake position), 500 per statement. */
export async function appendHistories(
  db: Kysely<Database>,
  records: readonly HistoryRecord[],
): Promise<void> {
  for (let i = 0; i < records.length; i += 500)
    await db
      .insertInto("node_history")
      .values(
        records.slice(i, i + 500).map((record) => ({
          node_id: record.nodeId,
          at: record.atMs,
          actor: record.actor,
          action: record.action,
          from_status: record.from ?? null,
          to_status: record.to ?? null,
          detail: JSON.stringify(record.detail ?? {}),
        })),
      )
      .execute();
}
