import { isFinal, type FinalClusterStatus } from "../../core/cluster-status.ts";
import type { NodeStatus } from "../../core/node-status.ts";
import type { ClusterView } from "../../protocol/clusters.ts";
import { appendLeaseOutcome } from "../registry/node-history.ts";
import { applyInTx } from "../registry/node-lifecycle.ts";
import { announceReputations, storeReputations } from "../registry/reputation.ts";
import { authorizeCluster, type ClusterActor } from "./cluster-access.ts";
import { moveCluster, moveLease, type Change } from "./cluster-lifecycle.ts";
import type { ClusterQueue } from "./cluster-queue.ts";
import {
  appendClusterEvent,
  clusterView,
  loadCluster,
  type LoadedCluster,
  type LoadedLease,
} from "./cluster-store.ts";
import { cancelTasks } from "./cluster-tasks.ts";
import { forgetClusterTls } from "./cluster-tls.ts";
import type { OverlayExchange } from "./cluster-network.ts";
import type { SchedulerResources } from "./resources.ts";
import type { LeaseSettler } from "./settlement.ts";
import { runInTransaction, type Tx } from "../store/transaction.ts";

/**
 * The one end path of a cluster — completion, failure, termination, expiry: in one transaction
 * its served minutes are paid, the rest refunded, its tasks cancelled and every node released;
 * then its workers are told to stop and `cluster:status` announces the end (the systems that
 * remember something of a cluster forget it on that event).
 */
export class ClusterEnds {
  constructor(
    private readonly resources: Pick<
      SchedulerResources,
      "db" | "clock" | "workers" | "payments" | "events" | "logger"
    >,
    private readonly queue: ClusterQueue,
    private readonly settler: LeaseSettler,
    private readonly overlays: OverlayExchange,
  ) {}

  /** The owner (or an admin) ends a cluster now; an ended one stays as it is. */
  async terminate(clusterId: string, actor: ClusterActor): Promise<ClusterView> {
    const cluster = await loadCluster(this.resources.db, clusterId);
    authorizeCluster(cluster, actor, "terminate");
    await this.queue.serial(clusterId, async () => {
      const current = await loadCluster(this.resources.db, clusterId);
      if (!isFinal(current.status))
        await this.finish(clusterId, "terminated", `terminated by account:${actor.accountId}`);
    });
    return clusterView(this.resources.db, clusterId);
  }

  /** Ends a cluster (callers hold its queue): final status, paid, refunded, every node released. */
  async finish(clusterId: string, status: FinalClusterStatus, reason: string): Promise<void> {
    const now = this.resources.clock.now();
    const change = { nowMs: now, reason: `cluster ${status}: ${reason}` };
    const ended = await runInTransaction(this.resources.db, async (tx) => {
      const released: Array<{ nodeId: string; from: NodeStatus }> = [];
      const cluster = await loadCluster(tx, clusterId);
      if (isFinal(cluster.status)) return undefined;
      // First, so that of two replicas ending it at once only one goes on (compare-and-set).
      if (!(await moveCluster(tx, cluster, { type: "end", as: status }, change))) return undefined;
      const active = cluster.nodes.filter((n) => n.active);
      for (const lease of active) await this.settler.settleLease(tx, cluster, lease, now);
      await this.resources.payments.refundRemainder(tx, {
        clusterId,
        consumerAccountId: cluster.accountId,
        currency: cluster.currency,
        nowMs: now,
      });
      if (cluster.autoscale !== null) await cancelTasks(tx, clusterId, now);
      await this.overlays.forget(tx, clusterId);
      for (const lease of active) {
        const result = await this.release(tx, cluster, lease, change);
        if (result.ok) released.push({ nodeId: lease.nodeId, from: result.from });
      }
      await appendClusterEvent(tx, clusterId, now, status, { reason });
      await forgetClusterTls(tx, clusterId);
      const reputations = await storeReputations(
        tx,
        [...new Set(active.map((n) => n.nodeId))],
        now,
      );
      return { from: cluster.status, active, reputations, released };
    });
    if (ended === undefined) return;
    announceReputations(this.resources.events, ended.reputations, now);
    for (const lease of ended.active)
      this.resources.workers.send(lease.nodeId, { type: "job-stop", clusterId, reason });
    for (const { nodeId, from } of ended.released)
      this.resources.events.emit("node:status", {
        nodeId,
        from,
        to: "available",
        atMs: now,
        reason: `released by ${clusterId}`,
      });
    this.resources.events.emit("cluster:status", {
      clusterId,
      from: ended.from,
      to: status,
      atMs: now,
      reason,
      releasedNodeIds: ended.active.map((n) => n.nodeId),
    });
    this.resources.logger.info({ clusterId, status, reason }, "cluster ended");
  }

  /** One of an ending cluster's leases let go, its outcome in its node's history, its node freed. */
  private async release(tx: Tx, cluster: LoadedCluster, lease: LoadedLease, change: Change) {
    const ran = lease.status === "exited" || lease.status === "failed";
    await moveLease(
      tx,
      { clusterId: cluster.id, seq: lease.seq, status: lease.status },
      { type: "release" },
      ran ? {} : { endedAtMs: change.nowMs },
      change,
    );
    await appendLeaseOutcome(tx, {
      nodeId: lease.nodeId,
      atMs: change.nowMs,
      clusterId: cluster.id,
      seq: lease.seq,
      outcome: "completed",
      cause: "consumer",
      end: "cluster-ended",
      reason: change.reason,
      slashed: null,
      currency: cluster.currency,
    });
    return applyInTx(
      tx,
      lease.nodeId,
      { type: "release" },
      { actor: "scheduler", reason: `released by ${cluster.id}`, nowMs: change.nowMs },
    );
  }
}
