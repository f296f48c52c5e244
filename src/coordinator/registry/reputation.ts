import type { Kysely } from "kysely";
import { z } from "zod";
import {
  REPUTATION_HORIZON_DAYS,
  reputation,
  type Reputation,
  type ReputationLease,
  type ReputationVerification,
} from "../../core/reputation.ts";
import type { CoordinatorEvents } from "../events.ts";
import type { Database } from "../store/schema.ts";
import { toNumber } from "../store/rows.ts";
import { runInTransaction } from "../store/transaction.ts";

/**
 * Reputation in the coordinator: reads a node's evidence from the public record — its cached 30-day
 * uptime and the `lease-ended` and `verification-*` rows of its history, within the formula's
 * horizon — and computes the score with src/core/reputation.ts, so anyone holding the history gets
 * the same number. The score is cached in `nodes.reputation` for the node list, its filter and
 * placement; it is written when new evidence arrives ({@link refreshReputation}) and on the periodic
 * uptime pass (NodeLifecycle.refreshAllUptime), which also lets old events fade.
 */

/** The history actions the score is computed from. */
export const REPUTATION_ACTIONS = [
  "lease-ended",
  "verification-passed",
  "verification-failed",
] as const;

const HORIZON_MS = REPUTATION_HORIZON_DAYS * 86_400_000;

/** The part of a `lease-ended` row's detail the score reads (appendLeaseOutcome writes it). */
const LeaseEndedDetail = z.object({
  outcome: z.enum(["completed", "lost", "lapsed", "drained", "released"]),
  /** The slash taken, a decimal amount; null or absent when none. */
  slashed: z.string().nullable().optional(),
});

/** A node as the score needs it, besides its history. */
export interface ReputationSubject {
  readonly id: string;
  readonly uptime30d: number;
  readonly registeredAtMs: number;
}

/**
 * The reputation of each of `nodes` at `nowMs`, from their history in one query (the index
 * `node_history_node_action_at` serves it). A row that does not parse counts for nothing.
 */
export async function computeReputations(
  db: Kysely<Database>,
  nodes: readonly ReputationSubject[],
  nowMs: number,
): Promise<Map<string, Reputation>> {
  const scores = new Map<string, Reputation>();
  if (nodes.length === 0) return scores;
  const rows = await db
    .selectFrom("node_history")
    .select(["node_id", "action", "at", "detail"])
    .where(
      "node_id",
      "in",
      nodes.map((n) => n.id),
    )
    .where("action", "in", REPUTATION_ACTIONS)
    .where("at", ">=", nowMs - HORIZON_MS)
    .execute();
  const evidence = new Map<
    string,
    { leases: ReputationLease[]; checks: ReputationVerification[] }
  >();
  for (const node of nodes) evidence.set(node.id, { leases: [], checks: [] });
  for (const row of rows) {
    const of = evidence.get(row.node_id);
    if (of === undefined) continue;
    const atMs = toNumber(row.at);
    if (row.action !== "lease-ended") {
      of.checks.push({ atMs, passed: row.action === "verification-passed" });
      continue;
    }
    const detail = LeaseEndedDetail.safeParse(JSON.parse(row.detail));
    if (!detail.success) continue;
    const { outcome, slashed } = detail.data;
    // Ended by the network or the coordinator, not the node: no evidence either way.
    if (outcome === "released") continue;
    // "0.000000" is no slash.
    of.leases.push({ atMs, outcome, slashed: slashed != null && /[1-9]/.test(slashed) });
  }
  for (const node of nodes) {
    const { leases, checks } = evidence.get(node.id)!;
    scores.set(
      node.id,
      reputation({
        uptime30d: node.uptime30d,
        registeredAtMs: node.registeredAtMs,
        leases,
        verifications: checks,
        nowMs,
      }),
    );
  }
  return scores;
}

/** A node whose stored score changed. */
export interface ReputationChange {
  readonly nodeId: string;
  readonly reputation: number;
}

/**
 * Recomputes the scores of `nodeIds` at `nowMs` in the caller's transaction `tx` and stores those
 * that changed; returns them, in id order, for {@link announceReputations} after commit. Call it in
 * the transaction that appends a `lease-ended` or verification row, so the stored score never lags
 * the history it comes from.
 */
export async function storeReputations(
  tx: Kysely<Database>,
  nodeIds: readonly string[],
  nowMs: number,
): Promise<ReputationChange[]> {
  if (nodeIds.length === 0) return [];
  const rows = await tx
    .selectFrom("nodes")
    .select(["id", "uptime_30d", "registered_at", "reputation"])
    .where("id", "in", nodeIds)
    .orderBy("id")
    .execute();
  const scores = await computeReputations(tx, rows.map(subjectOf), nowMs);
  const changed: ReputationChange[] = [];
  for (const row of rows) {
    const score = scores.get(row.id)!.score;
    if (score === row.reputation) continue;
    await tx.updateTable("nodes").set({ reputation: score }).where("id", "=", row.id).execute();
    changed.push({ nodeId: row.id, reputation: score });
  }
  return changed;
}

/** Publishes `node:reputation` for each change (the scheduler's inventory listens); after commit. */
export function announceReputations(
  events: CoordinatorEvents,
  changes: readonly ReputationChange[],
  atMs: number,
): void {
  for (const change of changes) events.emit("node:reputation", { ...change, atMs });
}

/**
 * {@link storeReputations} in a transaction of its own, then {@link announceReputations}: for a
 * caller whose history rows are already committed (e.g. after a scheduler transaction).
 */
export async function refreshReputation(
  deps: { readonly db: Kysely<Database>; readonly events: CoordinatorEvents },
  nodeIds: readonly string[],
  nowMs: number,
): Promise<void> {
  const changes = await runInTransaction(deps.db, (tx) => storeReputations(tx, nodeIds, nowMs));
  announceReputations(deps.events, changes, nowMs);
}

/** A node row's fields the score reads. */
export function subjectOf(row: {
  id: string;
  uptime_30d: number;
  registered_at: number | string | bigint;
}): ReputationSubject {
  return { id: row.id, uptime30d: row.uptime_30d, registeredAtMs: toNumber(row.registered_at) };
}
