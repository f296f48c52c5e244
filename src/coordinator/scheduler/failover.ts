import { isFinal } from "../../core/cluster-status.ts";
import { slashAmount } from "../../core/failover.ts";
import { rankEndPenalty, type RankEndCause } from "../../core/rank-end-cause.ts";
import { appendLeaseOutcome, type LeaseOutcome } from "../registry/node-history.ts";
import { applyInTx } from "../registry/node-lifecycle.ts";
import { announceReputations, storeReputations } from "../registry/reputation.ts";
import type { Autoscaler } from "./autoscaler.ts";
import type { ClusterEnds } from "./cluster-ends.ts";
import type { ClusterQueue } from "./cluster-queue.ts";
import { resealerOf, secretNamesOf } from "./cluster-secrets.ts";
import {
  appendClusterEvent,
  formatUnits,
  loadCluster,
  type LoadedCluster,
  type LoadedLease,
} from "./cluster-store.ts";
import { requeueTask } from "./cluster-tasks.ts";
import { leaseId } from "./leases.ts";
import type { Offers } from "./offers.ts";
import type { AfterCommit, LeaseLoss, RankMoves, Successor } from "./rank-moves.ts";
import type { SchedulerResources } from "./resources.ts";
import type { LeaseSettler } from "./settlement.ts";
import { runInTransaction, type Tx } from "../store/transaction.ts";
import type { Money } from "../../core/money.ts";

export type { LeaseLoss } from "./rank-moves.ts";

/**
 * Failover (DESIGN.md §5.7, issue 5): when a leased node fails, its lease is paid up to the node's
 * last heartbeat, the node is slashed one hour of the lease's rate to the consumer's benefit, and
 * its rank moves (./rank-moves.ts) — to a standby at once, else to a fresh node, else the cluster
 * fails (refunded). A drain moves ranks the same way without a slash, or lets them finish. Each
 * loss runs inside its cluster's queue.
 */
export class Failover {
  constructor(
    private readonly resources: SchedulerResources,
    private readonly queue: ClusterQueue,
    private readonly settler: LeaseSettler,
    private readonly offers: Offers,
    private readonly moves: RankMoves,
    private readonly autoscaler: Autoscaler,
    private readonly ends: ClusterEnds,
  ) {
    resources.events.on(
      "node:status",
      ({ nodeId, to, reason, lastSeenMs, unheardSinceRestart }) => {
        if (to !== "offline" && to !== "revoked") return;
        // A node that never came back after this coordinator's restart moves on unblamed: the
        // outage may have been the coordinator's own.
        const end =
          unheardSinceRestart === true
            ? "coordinator-outage"
            : to === "revoked"
              ? "node-revoked"
              : "node-offline";
        this.loseInBackground(nodeId, { end, reason: `went ${to}: ${reason}`, lastSeenMs });
      },
    );
    // A revoked device's node is lost at once (the revocation announces no status change).
    resources.events.on("device:revoked", ({ nodeId }) =>
      this.loseInBackground(nodeId, { end: "node-revoked", reason: "device revoked" }),
    );
  }

  private loseInBackground(nodeId: string, loss: LeaseLoss): void {
    void this.onNodeLost(nodeId, loss).catch((error: unknown) =>
      this.resources.logger.error({ err: error, nodeId }, "failover after a node loss failed"),
    );
  }

  /** Fails every lease the node holds (it went offline or was revoked). */
  async onNodeLost(nodeId: string, loss: LeaseLoss): Promise<void> {
    for (const lease of await this.activeLeasesOf(nodeId))
      await this.queue.serial(lease.cluster_id, () =>
        this.failLease(lease.cluster_id, lease.seq, loss),
      );
  }

  /** The leases `nodeId` holds now, by cluster. */
  activeLeasesOf(nodeId: string) {
    return this.resources.db
      .selectFrom("cluster_nodes")
      .select(["cluster_id", "seq"])
      .where("node_id", "=", nodeId)
      .where("active", "=", 1)
      .execute();
  }

  /**
   * A lease stops serving before its cluster ends: it is paid up to when the node last served,
   * slashed if its node failed, and its rank moves — to a standby at once, else to a fresh node
   * placed with the cluster's filters, else the cluster fails (and is refunded). For a drain the
   * rank moves only when a standby or a fresh node can take it; otherwise it finishes in place.
   */
  async failLease(clusterId: string, seq: number, loss: LeaseLoss): Promise<void> {
    const now = this.resources.clock.now();
    let after: AfterCommit = { sends: [], statuses: [], reputations: [] };
    // A fresh node is claimed in memory when picked; if it does not end up leased, unclaim it.
    let claimed: string | undefined;
    const unclaim = () =>
      claimed === undefined ? undefined : this.resources.inventory.refresh(claimed);
    const moved = await runInTransaction(this.resources.db, async (tx) => {
      // A rerun (runInTransaction) starts afresh: nothing of an earlier run is kept.
      await unclaim();
      claimed = undefined;
      after = { sends: [], statuses: [], reputations: [] };
      const cluster = await loadCluster(tx, clusterId);
      const lease = cluster.nodes.find((n) => n.seq === seq);
      if (isFinal(cluster.status) || lease?.active !== true) return false;
      const drain = loss.end === "drained";
      // An autoscaled cluster's lost node hands its task back to the queue; the autoscaler
      // grows again if the queue needs it. Other clusters move the rank.
      const scaled = cluster.autoscale !== null;
      const successor =
        lease.rank === null || scaled ? undefined : this.successorFor(cluster, lease, drain);
      if (successor !== undefined && "fresh" in successor) claimed = successor.fresh.nodeId;
      // A drained rank waits in place for a successor; a drained standby (no rank) just goes.
      if (drain && successor === undefined && lease.rank !== null && !scaled) return false;
      const cause = await this.closeLease(tx, cluster, lease, loss, now, after);
      await this.carryOn(tx, cluster, lease, successor, { ...loss, cause }, now, after);
      return true;
    }).catch(async (error: unknown) => {
      await unclaim();
      throw error;
    });
    if (!after.statuses.some((s) => s.nodeId === claimed)) await unclaim();
    if (!moved) return;
    announceReputations(this.resources.events, after.reputations, now);
    for (const status of after.statuses)
      this.resources.events.emit("node:status", { ...status, atMs: now });
    if (after.stakeSlashed !== undefined)
      this.resources.events.emit("node:stake", {
        nodeId: after.stakeSlashed,
        action: "slashed",
        atMs: now,
      });
    if (after.finish !== undefined)
      return this.ends.finish(clusterId, after.finish.status, after.finish.reason);
    for (const { nodeId, message } of after.sends) this.resources.workers.send(nodeId, message);
    if (after.rescale === true) await this.autoscaler.step(clusterId);
  }

  /**
   * The lost lease is paid to its end and closed, its node slashed where the loss is its
   * supplier's fault, the outcome in the node's history, and the node given back; its cause.
   */
  private async closeLease(
    tx: Tx,
    cluster: LoadedCluster,
    lease: LoadedLease,
    loss: LeaseLoss,
    now: number,
    after: AfterCommit,
  ): Promise<RankEndCause> {
    const penalty = rankEndPenalty(loss.end);
    await this.settler.endLease(tx, cluster, lease, {
      status: loss.end === "drained" ? "handed-over" : "lost",
      billedUntil: Math.min(now, loss.lastSeenMs ?? now),
      reason: loss.reason,
      nowMs: now,
    });
    const slashed = penalty.slash ? await this.slash(tx, cluster, lease, loss, now, after) : null;
    await appendLeaseOutcome(tx, {
      nodeId: lease.nodeId,
      atMs: now,
      clusterId: cluster.id,
      seq: lease.seq,
      outcome: leaseOutcome(loss.end),
      cause: penalty.cause,
      end: loss.end,
      reason: loss.reason,
      slashed: slashed === null ? null : formatUnits(slashed),
      currency: cluster.currency,
    });
    after.reputations = await storeReputations(tx, [lease.nodeId], now);
    // The node may still be connected (a lapse, a failed start, a drain): give it back.
    const released = await applyInTx(
      tx,
      lease.nodeId,
      { type: "release" },
      { actor: "scheduler", reason: `released by ${cluster.id}: ${loss.reason}`, nowMs: now },
    );
    // Whatever it still runs for this cluster stops (a late start, a drain's handover).
    after.sends.push({
      nodeId: lease.nodeId,
      message: { type: "job-stop", clusterId: cluster.id, reason: loss.reason },
    });
    if (released.ok)
      after.statuses.push({
        nodeId: lease.nodeId,
        from: released.from,
        to: released.to,
        reason: loss.reason,
      });
    return penalty.cause;
  }

  /**
   * One hour of the lease's rate to the consumer, from the node's stake and then its supplier's
   * earnings, as far as they go.
   */
  private async slash(
    tx: Tx,
    cluster: LoadedCluster,
    lease: LoadedLease,
    loss: LeaseLoss,
    now: number,
    after: AfterCommit,
  ): Promise<Money> {
    const owed = slashAmount(lease.pricePerHour);
    const taken = await this.resources.payments.slash(tx, {
      clusterId: cluster.id,
      leaseId: leaseId(cluster.id, lease.seq),
      nodeId: lease.nodeId,
      supplierAccountId: lease.supplierAccountId,
      consumerAccountId: cluster.accountId,
      currency: cluster.currency,
      amount: owed,
      reason: loss.reason,
      nowMs: now,
    });
    await appendClusterEvent(tx, cluster.id, now, "slashed", {
      nodeId: lease.nodeId,
      rank: lease.rank,
      owed: formatUnits(owed),
      taken: formatUnits(taken.taken),
      fromStake: formatUnits(taken.fromStake),
      fromEarnings: formatUnits(taken.fromEarnings),
      shortfall: formatUnits(taken.shortfall),
      cause: rankEndPenalty(loss.end).cause,
      end: loss.end,
    });
    if (taken.fromStake > 0n) after.stakeSlashed = lease.nodeId;
    return taken.taken;
  }

  /** After the loss: a task back in its queue, a standby gone, the rank moved, or the cluster failed. */
  private async carryOn(
    tx: Tx,
    cluster: LoadedCluster,
    lease: LoadedLease,
    successor: Successor | undefined,
    loss: LeaseLoss & { cause: RankEndCause },
    now: number,
    after: AfterCommit,
  ): Promise<void> {
    const lost = { nodeId: lease.nodeId, reason: loss.reason, cause: loss.cause, end: loss.end };
    if (cluster.autoscale !== null) {
      after.rescale = true;
      await requeueTask(tx, cluster.id, lease.seq);
      const task = lease.status === "reserved" || lease.status === "running" ? lease.attempt : null;
      return appendClusterEvent(tx, cluster.id, now, "node-lost", {
        ...lost,
        rank: lease.rank,
        task,
      });
    }
    if (lease.rank === null) return appendClusterEvent(tx, cluster.id, now, "standby-lost", lost);
    if (successor === undefined) {
      await appendClusterEvent(tx, cluster.id, now, "rank-lost", { ...lost, rank: lease.rank });
      const noResealer =
        secretNamesOf(cluster).length > 0 && resealerOf(cluster, [lease.nodeId]) === undefined;
      after.finish = {
        status: "failed",
        reason: noResealer
          ? `rank ${lease.rank} lost (${loss.reason}) and no standby, nor a surviving node to reseal its secrets to a fresh one`
          : `rank ${lease.rank} lost (${loss.reason}) and no standby or replacement node fits`,
      };
      return;
    }
    await this.moves.move(
      tx,
      cluster,
      { ...lease, rank: lease.rank },
      successor,
      loss,
      now,
      after,
      (standby, exit) => this.settler.endLease(tx, cluster, standby, exit),
    );
  }

  /** The node that takes `lease`'s rank: the first standby, else a fresh match under the rank's price. */
  private successorFor(
    cluster: LoadedCluster,
    lease: LoadedLease,
    drain: boolean,
  ): Successor | undefined {
    const standby = cluster.nodes.find(
      (n) => n.active && n.role === "standby" && !this.resources.workers.awaitingContact(n.nodeId),
    );
    if (standby !== undefined) return { standby };
    // A fresh node holds no box of the cluster's sealed secrets: a survivor must reseal to it.
    if (secretNamesOf(cluster).length > 0 && resealerOf(cluster, [lease.nodeId]) === undefined)
      return undefined;
    const fresh = this.offers.placeFresh(cluster, lease.pricePerHour, drain, lease.nodeId);
    return fresh === undefined ? undefined : { fresh };
  }
}

/** How a lease that stopped early is written in its node's history (what its reputation reads). */
function leaseOutcome(end: LeaseLoss["end"]): Exclude<LeaseOutcome, "completed"> {
  const penalty = rankEndPenalty(end);
  if (end === "drained") return "drained";
  if (penalty.slash) return "lost";
  return penalty.reputation ? "lapsed" : "released";
}
