import type { Kysely } from "kysely";
import { isFinal, type ClusterStatus } from "../../core/cluster-status.ts";
import { restartScope, slashAmount, successorPrice } from "../../core/failover.ts";
import { rankEndPenalty, type LeaseLossEnd } from "../../core/rank-end-cause.ts";
import type { NodeStatus } from "../../core/node-status.ts";
import { appendLeaseOutcome, type LeaseOutcome } from "../registry/node-history.ts";
import { applyInTx } from "../registry/node-lifecycle.ts";
import {
  announceReputations,
  storeReputations,
  type ReputationChange,
} from "../registry/reputation.ts";
import type { Database } from "../store/schema.ts";
import {
  appendClusterEvent,
  formatUnits,
  loadCluster,
  type LoadedCluster,
  type LoadedLease,
} from "./cluster-store.ts";
import { jobNetworkSpec } from "./cluster-network.ts";
import { resealRequest, resealerOf, secretNamesOf, startBoxes } from "./cluster-secrets.ts";
import { startTls } from "./cluster-tls.ts";
import { headOf, leaseId, leaseRow, rankCount, startMessage, type PlacedNode } from "./leases.ts";
import type { SchedulerDeps } from "./scheduler.ts";
import type { WorkerChannel } from "./worker-channel.ts";

/** Why a lease stops before its cluster ends. */
export interface LeaseLoss {
  /** How it ended: its cause, and whether the node is slashed or loses reputation for it. */
  end: LeaseLossEnd;
  reason: string;
  /** When the node was last known to serve (its last heartbeat); billing stops there. */
  lastSeenMs?: number | undefined;
}

/** How a lease that stops before its cluster ends is marked. */
export type LeaseEnd = "lost" | "handed-over" | "promoted" | "released";

/** What to tell workers once a transaction has committed. */
interface AfterCommit {
  sends: Array<{ nodeId: string; message: Parameters<WorkerChannel["send"]>[1] }>;
  statuses: Array<{ nodeId: string; from: NodeStatus; to: NodeStatus; reason: string }>;
  reputations: ReputationChange[];
  finish?: { status: "failed"; reason: string };
  rescale?: boolean;
}

/** What failover needs from the scheduler that owns the clusters. */
export interface ClusterRunner {
  /** Runs `work` after every earlier piece of work on the same cluster. */
  serial<T>(clusterId: string, work: () => Promise<T>): Promise<T>;
  finish(
    clusterId: string,
    status: Extract<ClusterStatus, "failed">,
    reason: string,
  ): Promise<void>;
  /** Settles a lease up to `billedUntil` and closes it. */
  endLease(
    tx: Kysely<Database>,
    cluster: LoadedCluster,
    lease: LoadedLease,
    end: { status: LeaseEnd; billedUntil: number; reason: string; nowMs: number },
  ): Promise<void>;
  /** An autoscaling round for the cluster (after a loss: rerun its task, regrow to min). */
  rescale(clusterId: string): Promise<void>;
  /** Puts the task a lost lease of an autoscaled cluster was running back in its queue. */
  requeue(tx: Kysely<Database>, clusterId: string, leaseSeq: number): Promise<void>;
  /** A fresh node for `lease`'s rank under the cluster's filters and the rank's price, claimed. */
  placeReplacement(
    cluster: LoadedCluster,
    lease: LoadedLease,
    quiet: boolean,
  ): PlacedNode | undefined;
  /** The head's rendezvous address as this coordinator knows it, if it does. */
  headOf(clusterId: string): { address: string; port: number } | undefined;
  forgetHead(clusterId: string): void;
}

/**
 * Failover (DESIGN.md §5.7, issue 5): when a leased node fails, its lease is paid up to the node's
 * last heartbeat, the node is slashed one hour of the lease's rate to the consumer's benefit, and
 * its rank moves — to a standby at once, else to a fresh node, else the cluster fails (refunded).
 * A drain moves ranks the same way without a slash, or lets them finish. Callers run each call
 * inside the cluster's `serial` queue.
 */
export class Failover {
  /** Ranks moved and not yet running on their new node: `<cluster>/<rank>` → when and why. */
  private readonly takeovers = new Map<
    string,
    { fromNodeId: string; detectedAtMs: number; lastSeenMs: number | undefined }
  >();

  constructor(
    private readonly deps: SchedulerDeps,
    private readonly options: { reservationTtlMs: number },
    private readonly runner: ClusterRunner,
  ) {}

  /** The pending takeover of `rank`, now that its new node runs it (once). */
  tookOver(clusterId: string, rank: number) {
    const key = `${clusterId}/${rank}`;
    const takeover = this.takeovers.get(key);
    this.takeovers.delete(key);
    return takeover;
  }

  /** Drops what is remembered of an ended cluster. */
  forget(clusterId: string): void {
    for (const key of this.takeovers.keys())
      if (key.startsWith(`${clusterId}/`)) this.takeovers.delete(key);
  }

  /** Fails every lease the node holds (it went offline or was revoked). */
  async onNodeLost(nodeId: string, loss: LeaseLoss): Promise<void> {
    for (const lease of await this.activeLeasesOf(nodeId))
      await this.runner.serial(lease.cluster_id, () =>
        this.failLease(lease.cluster_id, lease.seq, loss),
      );
  }

  private activeLeasesOf(nodeId: string) {
    return this.deps.db
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
    const now = this.deps.clock.now();
    const after: AfterCommit = { sends: [], statuses: [], reputations: [] };
    // A fresh node is claimed in memory when picked; if it does not end up leased, unclaim it.
    let claimed: string | undefined;
    const unclaim = () =>
      claimed === undefined ? undefined : this.deps.inventory.refresh(claimed);
    const moved = await this.deps.db
      .transaction()
      .execute(async (tx) => {
        const cluster = await loadCluster(tx, clusterId);
        const lease = cluster.nodes.find((n) => n.seq === seq);
        if (isFinal(cluster.status) || lease?.active !== true) return false;
        const drain = loss.end === "drained";
        const penalty = rankEndPenalty(loss.end);
        // An autoscaled cluster's lost node hands its task back to the queue; the autoscaler
        // grows again if the queue needs it. Other clusters move the rank.
        const scaled = cluster.autoscale !== null;
        const successor =
          lease.rank === null || scaled ? undefined : this.successorFor(cluster, lease, drain);
        if (successor !== undefined && "fresh" in successor) claimed = successor.fresh.nodeId;
        // A drained rank waits in place for a successor; a drained standby (no rank) just goes.
        if (drain && successor === undefined && lease.rank !== null && !scaled) return false;

        const billedUntil = Math.min(now, loss.lastSeenMs ?? now);
        await this.runner.endLease(tx, cluster, lease, {
          status: drain ? "handed-over" : "lost",
          billedUntil,
          reason: loss.reason,
          nowMs: now,
        });
        let slashed: bigint | null = null;
        if (penalty.slash) {
          const taken = await this.deps.payments.slash(tx, {
            clusterId,
            leaseId: leaseId(clusterId, lease.seq),
            nodeId: lease.nodeId,
            supplierAccountId: lease.supplierAccountId,
            consumerAccountId: cluster.accountId,
            currency: cluster.currency,
            amount: slashAmount(lease.pricePerHour),
            reason: loss.reason,
            nowMs: now,
          });
          slashed = taken.taken;
          await appendClusterEvent(tx, clusterId, now, "slashed", {
            nodeId: lease.nodeId,
            rank: lease.rank,
            owed: formatUnits(slashAmount(lease.pricePerHour)),
            taken: formatUnits(taken.taken),
            shortfall: formatUnits(taken.shortfall),
            cause: penalty.cause,
            end: loss.end,
          });
        }
        await appendLeaseOutcome(tx, {
          nodeId: lease.nodeId,
          atMs: now,
          clusterId,
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
          { actor: "scheduler", reason: `released by ${clusterId}: ${loss.reason}`, nowMs: now },
        );
        // Whatever it still runs for this cluster stops (a late start, a drain's handover).
        after.sends.push({
          nodeId: lease.nodeId,
          message: { type: "job-stop", clusterId, reason: loss.reason },
        });
        if (released.ok)
          after.statuses.push({
            nodeId: lease.nodeId,
            from: released.from,
            to: released.to,
            reason: loss.reason,
          });

        if (scaled) {
          after.rescale = true;
          await this.runner.requeue(tx, clusterId, lease.seq);
          await appendClusterEvent(tx, clusterId, now, "node-lost", {
            nodeId: lease.nodeId,
            rank: lease.rank,
            reason: loss.reason,
            cause: penalty.cause,
            end: loss.end,
            task: lease.status === "reserved" || lease.status === "running" ? lease.attempt : null,
          });
          return true;
        }
        if (lease.rank === null) {
          await appendClusterEvent(tx, clusterId, now, "standby-lost", {
            nodeId: lease.nodeId,
            reason: loss.reason,
            cause: penalty.cause,
            end: loss.end,
          });
          return true;
        }
        if (successor === undefined) {
          await appendClusterEvent(tx, clusterId, now, "rank-lost", {
            nodeId: lease.nodeId,
            rank: lease.rank,
            reason: loss.reason,
            cause: penalty.cause,
            end: loss.end,
          });
          after.finish = {
            status: "failed",
            reason:
              secretNamesOf(cluster).length > 0 && resealerOf(cluster, [lease.nodeId]) === undefined
                ? `rank ${lease.rank} lost (${loss.reason}) and no standby, nor a surviving node to reseal its secrets to a fresh one`
                : `rank ${lease.rank} lost (${loss.reason}) and no standby or replacement node fits`,
          };
          return true;
        }
        await this.moveRank(tx, cluster, lease, successor, loss, now, after);
        return true;
      })
      .catch(async (error: unknown) => {
        await unclaim();
        throw error;
      });
    if (!after.statuses.some((s) => s.nodeId === claimed)) await unclaim();
    if (!moved) return;
    announceReputations(this.deps.events, after.reputations, now);
    for (const status of after.statuses)
      this.deps.events.emit("node:status", { ...status, atMs: now });
    if (after.finish !== undefined)
      return this.runner.finish(clusterId, after.finish.status, after.finish.reason);
    for (const { nodeId, message } of after.sends) this.deps.workers.send(nodeId, message);
    if (after.rescale === true) await this.runner.rescale(clusterId);
  }

  /** The node that takes `lease`'s rank: the first standby, else a fresh match under the rank's price. */
  private successorFor(
    cluster: LoadedCluster,
    lease: LoadedLease,
    drain: boolean,
  ): { standby: LoadedLease } | { fresh: PlacedNode } | undefined {
    const standby = cluster.nodes.find(
      (n) => n.active && n.role === "standby" && !this.deps.workers.awaitingContact(n.nodeId),
    );
    if (standby !== undefined) return { standby };
    // A fresh node holds no box of the cluster's sealed secrets: a survivor must reseal to it.
    if (secretNamesOf(cluster).length > 0 && resealerOf(cluster, [lease.nodeId]) === undefined)
      return undefined;
    const fresh = this.runner.placeReplacement(cluster, lease, drain);
    return fresh === undefined ? undefined : { fresh };
  }

  /** Gives `lease`'s rank to its successor in a new lease and plans the restart its kind needs. */
  private async moveRank(
    tx: Kysely<Database>,
    cluster: LoadedCluster,
    lease: LoadedLease,
    successor: { standby: LoadedLease } | { fresh: PlacedNode },
    loss: LeaseLoss,
    now: number,
    after: AfterCommit,
  ): Promise<void> {
    const rank = lease.rank!;
    let node: PlacedNode;
    if ("standby" in successor) {
      const standby = successor.standby;
      await this.runner.endLease(tx, cluster, standby, {
        status: "promoted",
        billedUntil: now,
        reason: `took rank ${rank}`,
        nowMs: now,
      });
      node = {
        nodeId: standby.nodeId,
        accountId: standby.supplierAccountId,
        region: standby.region,
        zone: standby.zone,
        price: standby.nodePricePerHour,
      };
    } else {
      node = successor.fresh;
    }
    const leased = await applyInTx(
      tx,
      node.nodeId,
      { type: "lease" },
      { actor: "scheduler", reason: `took rank ${rank} of ${cluster.id}`, nowMs: now },
    );
    if (!leased.ok) {
      // Taken or gone meanwhile: this rank cannot move now, so the cluster ends (refunded).
      after.finish = {
        status: "failed",
        reason: `rank ${rank} lost and its successor ${node.nodeId} is gone`,
      };
      return;
    }
    after.statuses.push({
      nodeId: node.nodeId,
      from: leased.from,
      to: leased.to,
      reason: `took rank ${rank} of ${cluster.id}`,
    });
    const scope = restartScope(cluster.kind, rank);
    const attempt = Math.max(...cluster.nodes.map((n) => n.attempt)) + 1;
    const seq = Math.max(...cluster.nodes.map((n) => n.seq)) + 1;
    await tx
      .insertInto("cluster_nodes")
      .values({
        ...leaseRow(cluster.id, seq, node, successorPrice(node.price, lease.pricePerHour)),
        node_price_per_hour: Number(node.price),
        rank,
        attempt,
        role: rank === 0 ? "head" : "worker",
        status: "reserved",
        reserved_until: now + this.options.reservationTtlMs,
        started_at: null,
      })
      .execute();
    // A full restart: every other rank runs again under the new attempt, against a new head.
    if (scope === "all") {
      for (const other of cluster.nodes) {
        if (!other.active || other.rank === null || other.rank === rank) continue;
        await tx
          .updateTable("cluster_nodes")
          .set({ attempt, status: "reserved", reserved_until: now + this.options.reservationTtlMs })
          .where("cluster_id", "=", cluster.id)
          .where("seq", "=", other.seq)
          .execute();
      }
      this.runner.forgetHead(cluster.id);
    }
    await appendClusterEvent(tx, cluster.id, now, "failover", {
      rank,
      fromNodeId: lease.nodeId,
      toNodeId: node.nodeId,
      via: "standby" in successor ? "standby" : "replacement",
      reason: loss.reason,
      cause: rankEndPenalty(loss.end).cause,
      end: loss.end,
      restart: scope,
      attempt,
      detectedAt: new Date(now).toISOString(),
      ...(loss.lastSeenMs === undefined
        ? {}
        : { lastSeenAt: new Date(loss.lastSeenMs).toISOString() }),
    });
    this.takeovers.set(`${cluster.id}/${rank}`, {
      fromNodeId: lease.nodeId,
      detectedAtMs: now,
      lastSeenMs: loss.lastSeenMs,
    });
    if ("fresh" in successor && secretNamesOf(cluster).length > 0) {
      const resealer = resealerOf(cluster, [lease.nodeId]);
      const reseal =
        resealer === undefined
          ? undefined
          : await resealRequest(tx, cluster, resealer, node.nodeId);
      if (reseal === undefined) {
        after.finish = {
          status: "failed",
          reason: `rank ${rank} lost and no surviving node can reseal its secrets to ${node.nodeId}`,
        };
        return;
      }
      // The fresh node starts once the reseal comes back (scheduler: onResealed).
      after.sends.push(reseal);
    }
    const worldSize = rankCount(cluster);
    const spec = {
      ...cluster.spec,
      kind: cluster.kind,
      network: jobNetworkSpec(cluster.spec, worldSize, false),
    };
    if (scope === "all" || rank === 0) {
      // The head starts first; the others follow once it reports its port (`onAccepted`).
      const headNode =
        rank === 0 ? node.nodeId : cluster.nodes.find((n) => n.active && n.rank === 0)!.nodeId;
      const sealed = await startBoxes(tx, cluster, headNode);
      if (sealed.ready) {
        const tls = await startTls(tx, cluster, headNode, now);
        after.sends.push({
          nodeId: headNode,
          message: startMessage(cluster.id, spec, 0, attempt, worldSize, null, sealed.boxes, tls),
        });
      }
      return;
    }
    // Before the head reported its port, the rank waits in `reserved` and starts with the others.
    const head = this.runner.headOf(cluster.id) ?? (await headOf(tx, cluster.id));
    const sealed = await startBoxes(tx, cluster, node.nodeId);
    if (head !== undefined && sealed.ready) {
      const tls = await startTls(tx, cluster, node.nodeId, now);
      after.sends.push({
        nodeId: node.nodeId,
        message: startMessage(cluster.id, spec, rank, attempt, worldSize, head, sealed.boxes, tls),
      });
    }
  }

  /** An announced stop: ranks move where they can (no slash); the rest finish, then `drained`. */
  async drain(nodeId: string, reason: string): Promise<void> {
    await this.deps.db.updateTable("nodes").set({ draining: 1 }).where("id", "=", nodeId).execute();
    await this.deps.inventory.refresh(nodeId);
    for (const lease of await this.activeLeasesOf(nodeId))
      await this.runner.serial(lease.cluster_id, () =>
        this.failLease(lease.cluster_id, lease.seq, {
          end: "drained",
          reason: `drained: ${reason}`,
        }),
      );
    await this.answerDrained(nodeId);
  }

  /** Tells a draining node it may stop, once it holds no lease. */
  async answerDrained(nodeId: string): Promise<void> {
    const node = await this.deps.db
      .selectFrom("nodes")
      .select("draining")
      .where("id", "=", nodeId)
      .executeTakeFirst();
    if (node?.draining !== 1) return;
    if ((await this.activeLeasesOf(nodeId)).length > 0) return;
    this.deps.workers.send(nodeId, { type: "drained" });
  }

  async clearDraining(nodeId: string): Promise<void> {
    await this.deps.db
      .updateTable("nodes")
      .set({ draining: 0 })
      .where("id", "=", nodeId)
      .where("draining", "=", 1)
      .execute()
      .then(() => this.deps.inventory.refresh(nodeId))
      .catch((error: unknown) =>
        this.deps.logger.error({ err: error, nodeId }, "draining flag reset failed"),
      );
  }
}

/** How a lease that stopped early is written in its node's history (what its reputation reads). */
function leaseOutcome(end: LeaseLoss["end"]): Exclude<LeaseOutcome, "completed"> {
  const penalty = rankEndPenalty(end);
  if (end === "drained") return "drained";
  if (penalty.slash) return "lost";
  return penalty.reputation ? "lapsed" : "released";
}
