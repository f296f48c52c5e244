import { setImmediate } from "node:timers/promises";
import type { Kysely } from "kysely";
import {
  isOnline,
  nextNodeStatus,
  type NodeEvent,
  type NodeStatus,
} from "../../core/node-status.ts";
import { TandemError } from "../../core/errors.ts";
import { UPTIME_WINDOWS_MS, uptimeSummary, type OnlineInterval } from "../../core/uptime.ts";
import type { CoordinatorEvents } from "../events.ts";
import type { Database } from "../store/schema.ts";
import { toNumber, toNumberOrNull } from "../store/rows.ts";
import { addNodeFlag } from "./node-flags.ts";
import { appendHistory } from "./node-history.ts";
import {
  announceReputations,
  computeReputations,
  storeReputations,
  type ReputationChange,
} from "./reputation.ts";
import { runInTransaction } from "../store/transaction.ts";

/** Nodes per transaction in {@link NodeLifecycle.refreshAllUptime}: ~15 ms of SQLite work each. */
export const UPTIME_REFRESH_BATCH = 250;
/** Node ids per last-seen UPDATE (SQLite binds at most 32,766 parameters; this stays small). */
const LAST_SEEN_BATCH = 500;

export interface TransitionContext {
  actor: string;
  reason: string;
  nowMs: number;
  /** When the worker was last heard from, if earlier than `nowMs` (a missed-heartbeat verdict). */
  lastSeenMs?: number;
  /** Offline because it never came back after a coordinator restart (not the supplier's fault). */
  unheardSinceRestart?: boolean;
}

export type TransitionResult =
  | { ok: true; from: NodeStatus; to: NodeStatus }
  | { ok: false; code: "INVALID_TRANSITION" | "NOT_FOUND"; from: NodeStatus | null };

/**
 * The only code that changes a node's status. In one transaction it checks the transition, writes
 * the status, opens or closes the online interval that uptime is computed from, refreshes the
 * node's cached uptime, and appends the history row; the event goes out after commit.
 */
export class NodeLifecycle {
  constructor(
    private readonly db: Kysely<Database>,
    private readonly events: CoordinatorEvents,
  ) {}

  async apply(nodeId: string, event: NodeEvent, ctx: TransitionContext): Promise<TransitionResult> {
    const result = await runInTransaction(this.db, (tx) => applyInTx(tx, nodeId, event, ctx));
    if (result.ok) {
      this.events.emit("node:status", {
        nodeId,
        from: result.from,
        to: result.to,
        atMs: ctx.nowMs,
        reason: ctx.reason,
        ...(ctx.lastSeenMs === undefined ? {} : { lastSeenMs: ctx.lastSeenMs }),
        ...(ctx.unheardSinceRestart === true ? { unheardSinceRestart: true } : {}),
      });
    }
    return result;
  }

  /**
   * Records a verification result in the node's history, updates the node's reputation and moves
   * its status as the proof decides (`afterProof`: a first pass makes it available, a failed spot
   * check unverified) — in one transaction, so a node is never available unrecorded. A node is rented as what it proved (DESIGN.md §8 rule 7): with a
   * `provenModel` other than its reported one, its GPU model and VRAM become the proven model's
   * (its catalog price follows through the 0013 trigger). `flag` flags the node (never placed).
   */
  async recordVerification(
    nodeId: string,
    result: {
      passed: boolean;
      detail: Record<string, unknown>;
      provenModel?: { id: string; vramMiB: number } | undefined;
      flag?: { flag: string; detail: Record<string, unknown> } | undefined;
    },
    ctx: TransitionContext,
  ): Promise<TransitionResult | undefined> {
    const [transition, reputation] = await runInTransaction(this.db, async (tx) => {
      await appendHistory(tx, {
        nodeId,
        atMs: ctx.nowMs,
        actor: ctx.actor,
        action: result.passed ? "verification-passed" : "verification-failed",
        detail: result.detail,
      });
      if (result.flag !== undefined)
        await addNodeFlag(tx, nodeId, result.flag.flag, result.flag.detail, ctx.nowMs);
      if (result.passed && result.provenModel !== undefined)
        await rentAsProven(tx, nodeId, result.provenModel, ctx);
      const moved = await afterProof(tx, nodeId, result.passed, ctx);
      return [moved, await storeReputations(tx, [nodeId], ctx.nowMs)] as const;
    });
    if (transition?.ok) {
      this.events.emit("node:status", {
        nodeId,
        from: transition.from,
        to: transition.to,
        atMs: ctx.nowMs,
        reason: ctx.reason,
      });
    }
    announceReputations(this.events, reputation, ctx.nowMs);
    this.events.emit("node:proven", { nodeId, passed: result.passed, atMs: ctx.nowMs });
    return transition;
  }

  /**
   * Records that these nodes were heard from at or after `atMs` (never moving a newer time
   * back). Heartbeats live in memory only; this coarse copy, written every few seconds, is what a
   * restarted coordinator knows of when each node was last alive. One statement per batch, in
   * id order and retried as a transaction: replicas flush their own nodes while the uptime
   * refresh writes every node in id order, and two batches locking rows in different orders
   * deadlock on PostgreSQL (seen with three replicas in bench/heartbeats/replicas.ts).
   */
  async recordLastSeen(nodeIds: readonly string[], atMs: number): Promise<void> {
    const ordered = [...nodeIds].sort();
    for (let i = 0; i < ordered.length; i += LAST_SEEN_BATCH) {
      const batch = ordered.slice(i, i + LAST_SEEN_BATCH);
      await runInTransaction(this.db, (tx) =>
        tx
          .updateTable("nodes")
          .set({ last_seen_at: atMs })
          .where("id", "in", batch)
          .where((eb) => eb.or([eb("last_seen_at", "is", null), eb("last_seen_at", "<", atMs)]))
          .execute(),
      );
      await setImmediate();
    }
  }

  /**
   * Recomputes every node's cached uptime and, from it and the history, its reputation; run
   * periodically since both drift with time alone (uptime windows slide, old events fade).
   * Goes through the nodes in id order, {@link UPTIME_REFRESH_BATCH} per transaction (one query for
   * the batch's intervals, one for its reputation history), and yields to the event loop between
   * batches: as one transaction, a pass blocked the process for ~0.8 s at 10,000 nodes and ~8 s at
   * 100,000 on SQLite (bench/RESULTS.md), long enough for every worker to miss its heartbeat
   * deadline. Rows whose figures did not change are not written. An aborted `signal` stops the pass
   * before its next batch.
   */
  async refreshAllUptime(nowMs: number, signal?: AbortSignal): Promise<void> {
    const since = nowMs - UPTIME_WINDOWS_MS["30d"];
    let after = "";
    for (;;) {
      const reputations: ReputationChange[] = [];
      const nodes = await runInTransaction(this.db, async (tx) => {
        reputations.length = 0; // a rerun starts afresh
        const batch = await tx
          .selectFrom("nodes")
          .select(["id", "registered_at", "uptime_24h", "uptime_7d", "uptime_30d", "reputation"])
          .where("id", ">", after)
          .orderBy("id")
          .limit(UPTIME_REFRESH_BATCH)
          .execute();
        if (batch.length === 0) return batch;
        const intervals = await tx
          .selectFrom("node_intervals")
          .select(["node_id", "start_ms", "end_ms"])
          .where(
            "node_id",
            "in",
            batch.map((n) => n.id),
          )
          .where((eb) => eb.or([eb("end_ms", "is", null), eb("end_ms", ">", since)]))
          .execute();
        const byNode = new Map<string, OnlineInterval[]>();
        for (const row of intervals) {
          const list = byNode.get(row.node_id) ?? [];
          list.push({ startMs: toNumber(row.start_ms), endMs: toNumberOrNull(row.end_ms) });
          byNode.set(row.node_id, list);
        }
        const uptimes = batch.map((node) =>
          uptimeSummary(byNode.get(node.id) ?? [], {
            nowMs,
            registeredAtMs: toNumber(node.registered_at),
          }),
        );
        const scores = await computeReputations(
          tx,
          batch.map((node, i) => ({
            id: node.id,
            uptime30d: uptimes[i]!["30d"],
            registeredAtMs: toNumber(node.registered_at),
          })),
          nowMs,
        );
        for (const [i, node] of batch.entries()) {
          const u = uptimes[i]!;
          const reputation = scores.get(node.id)!.score;
          if (reputation !== node.reputation) reputations.push({ nodeId: node.id, reputation });
          if (
            u["24h"] === node.uptime_24h &&
            u["7d"] === node.uptime_7d &&
            u["30d"] === node.uptime_30d &&
            reputation === node.reputation
          )
            continue;
          await tx
            .updateTable("nodes")
            .set({ uptime_24h: u["24h"], uptime_7d: u["7d"], uptime_30d: u["30d"], reputation })
            .where("id", "=", node.id)
            .execute();
        }
        return batch;
      });
      announceReputations(this.events, reputations, nowMs);
      const last = nodes.at(-1);
      if (last === undefined || nodes.length < UPTIME_REFRESH_BATCH) return;
      after = last.id;
      await setImmediate();
      if (signal?.aborted === true) return;
    }
  }
}

export async function applyInTx(
  tx: Kysely<Database>,
  nodeId: string,
  event: NodeEvent,
  ctx: TransitionContext,
): Promise<TransitionResult> {
  // Compare-and-set on the status: two transactions that read the same status cannot both move
  // it (PostgreSQL's READ COMMITTED would let the later write silently undo the earlier one, e.g.
  // a verification result un-revoking a device). The loser re-reads the committed status and
  // decides again; each retry means another transition committed, so the loop ends.
  let from: NodeStatus;
  let to: NodeStatus;
  let registeredAtMs: number;
  for (;;) {
    const node = await tx
      .selectFrom("nodes")
      .select(["status", "registered_at"])
      .where("id", "=", nodeId)
      .executeTakeFirst();
    if (node === undefined) return { ok: false, code: "NOT_FOUND", from: null };
    from = node.status as NodeStatus;
    registeredAtMs = toNumber(node.registered_at);
    try {
      to = nextNodeStatus(from, event);
    } catch (error) {
      if (error instanceof TandemError) return { ok: false, code: "INVALID_TRANSITION", from };
      throw error;
    }
    const claimed = await tx
      .updateTable("nodes")
      .set({ status: to })
      .where("id", "=", nodeId)
      .where("status", "=", from)
      .executeTakeFirst();
    if (claimed.numUpdatedRows > 0n) break;
  }

  const wasOnline = isOnline(from);
  const nowOnline = isOnline(to);
  if (!wasOnline && nowOnline) {
    await tx
      .insertInto("node_intervals")
      .values({ node_id: nodeId, start_ms: ctx.nowMs, end_ms: null })
      .execute();
  } else if (wasOnline && !nowOnline) {
    await tx
      .updateTable("node_intervals")
      // A node that went silent stopped serving at its last beat, not when we noticed.
      .set({ end_ms: ctx.lastSeenMs ?? ctx.nowMs })
      .where("node_id", "=", nodeId)
      .where("end_ms", "is", null)
      .execute();
  }

  const uptime = await computeUptime(tx, nodeId, registeredAtMs, ctx.nowMs);
  await tx
    .updateTable("nodes")
    .set({
      uptime_24h: uptime["24h"],
      uptime_7d: uptime["7d"],
      uptime_30d: uptime["30d"],
      ...(event.type === "verify" ? { verified_at: ctx.nowMs } : {}),
      ...(event.type === "unverify" ? { verified_at: null } : {}),
      ...(nowOnline ? { last_seen_at: ctx.nowMs } : {}),
      ...(ctx.lastSeenMs === undefined ? {} : { last_seen_at: ctx.lastSeenMs }),
    })
    .where("id", "=", nodeId)
    .execute();
  await appendHistory(tx, {
    nodeId,
    atMs: ctx.nowMs,
    actor: ctx.actor,
    action: "status",
    from,
    to,
    detail: { reason: ctx.reason },
  });
  return { ok: true, from, to };
}

/**
 * What a recorded proof does to the node's status: a first proof that passed makes it available;
 * a spot check of an idle node that passed renews `verified_at` (spot-checks.ts draws the next one
 * from it), one that failed sends the node back to unverified. A node leased meanwhile keeps its
 * lease (proofs run only while idle: its next spot check decides).
 */
async function afterProof(
  tx: Kysely<Database>,
  nodeId: string,
  passed: boolean,
  ctx: TransitionContext,
): Promise<TransitionResult | undefined> {
  const node = await tx
    .selectFrom("nodes")
    .select("status")
    .where("id", "=", nodeId)
    .executeTakeFirst();
  if (node?.status === "unverified")
    return passed ? applyInTx(tx, nodeId, { type: "verify" }, ctx) : undefined;
  if (node?.status !== "available") return undefined;
  if (!passed) return applyInTx(tx, nodeId, { type: "unverify" }, ctx);
  await tx.updateTable("nodes").set({ verified_at: ctx.nowMs }).where("id", "=", nodeId).execute();
  return undefined;
}

/** Sets the node's GPU model (and VRAM, never above what it reported) to the one it proved as. */
async function rentAsProven(
  tx: Kysely<Database>,
  nodeId: string,
  proven: { id: string; vramMiB: number },
  ctx: TransitionContext,
): Promise<void> {
  const node = await tx
    .selectFrom("nodes")
    .select(["gpu_model", "vram_mib"])
    .where("id", "=", nodeId)
    .executeTakeFirst();
  if (node === undefined || node.gpu_model === proven.id) return;
  const vramMiB = Math.min(node.vram_mib, proven.vramMiB);
  await tx
    .updateTable("nodes")
    .set({ gpu_model: proven.id, vram_mib: vramMiB })
    .where("id", "=", nodeId)
    .execute();
  await appendHistory(tx, {
    nodeId,
    atMs: ctx.nowMs,
    actor: ctx.actor,
    action: "metadata",
    detail: {
      changed: ["gpuModel"],
      reportedModel: node.gpu_model,
      provenModel: proven.id,
      vramMiB,
    },
  });
}

async function computeUptime(
  tx: Kysely<Database>,
  nodeId: string,
  registeredAtMs: number,
  nowMs: number,
) {
  const rows = await tx
    .selectFrom("node_intervals")
    .select(["start_ms", "end_ms"])
    .where("node_id", "=", nodeId)
    .where((eb) =>
      eb.or([eb("end_ms", "is", null), eb("end_ms", ">", nowMs - UPTIME_WINDOWS_MS["30d"])]),
    )
    .execute();
  return uptimeSummary(
    rows.map((r) => ({ startMs: toNumber(r.start_ms), endMs: toNumberOrNull(r.end_ms) })),
    { nowMs, registeredAtMs },
  );
}
