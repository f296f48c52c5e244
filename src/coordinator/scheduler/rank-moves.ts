import { isFinal } from "../../core/cluster-status.ts";
import { restartScope, successorPrice } from "../../core/failover.ts";
import type { NodeStatus } from "../../core/node-status.ts";
import { rankEndPenalty, type LeaseLossEnd } from "../../core/rank-end-cause.ts";
import { applyInTx } from "../registry/node-lifecycle.ts";
import type { ReputationChange } from "../registry/reputation.ts";
import { addLeases, moveLease } from "./cluster-lifecycle.ts";
import { jobNetworkSpec } from "./cluster-network.ts";
import { resealRequest, resealerOf, secretNamesOf, startBoxes } from "./cluster-secrets.ts";
import { appendClusterEvent, type LoadedCluster, type LoadedLease } from "./cluster-store.ts";
import { startTls } from "./cluster-tls.ts";
import { headOf, leaseRow, rankCount, startMessage, type PlacedNode } from "./leases.ts";
import type { Rendezvous } from "./rendezvous.ts";
import type { SchedulerResources } from "./resources.ts";
import type { LeaseExit } from "./settlement.ts";
import type { WorkerChannel } from "./worker-channel.ts";
import type { Tx } from "../store/transaction.ts";

/** Why a lease stops before its cluster ends. */
export interface LeaseLoss {
  /** How it ended: its cause, and whether the node is slashed or loses reputation for it. */
  end: LeaseLossEnd;
  reason: string;
  /** When the node was last known to serve (its last heartbeat); billing stops there. */
  lastSeenMs?: number | undefined;
}

/** What to do once a failover's transaction has committed. */
export interface AfterCommit {
  sends: Array<{ nodeId: string; message: Parameters<WorkerChannel["send"]>[1] }>;
  statuses: Array<{ nodeId: string; from: NodeStatus; to: NodeStatus; reason: string }>;
  reputations: ReputationChange[];
  finish?: { status: "failed"; reason: string };
  rescale?: boolean;
  /** The node whose stake a slash took from (placement's `minStake` and the token figures). */
  stakeSlashed?: string;
}

/** Who takes a lost rank: a standby of the cluster, or a fresh node placed for it. */
export type Successor = { standby: LoadedLease } | { fresh: PlacedNode };

/**
 * A rank's move to its successor (./failover.ts decides that it moves): the successor gets a new
 * lease under a new attempt, the ranks its kind restarts with it are reserved again, and the
 * starts are planned — the head's first, then each rank against the head. A move is remembered
 * until the new node runs the rank, to record the takeover's time.
 */
export class RankMoves {
  /** Ranks moved and not yet running on their new node: `<cluster>/<rank>` → when and why. */
  private readonly takeovers = new Map<
    string,
    { fromNodeId: string; detectedAtMs: number; lastSeenMs: number | undefined }
  >();

  constructor(
    resources: Pick<SchedulerResources, "events">,
    private readonly options: { reservationTtlMs: number },
    private readonly rendezvous: Rendezvous,
  ) {
    resources.events.on("cluster:status", ({ clusterId, to }) => {
      if (!isFinal(to)) return;
      for (const key of this.takeovers.keys())
        if (key.startsWith(`${clusterId}/`)) this.takeovers.delete(key);
    });
  }

  /** The pending takeover of `rank`, now that its new node runs it (once). */
  tookOver(clusterId: string, rank: number) {
    const key = `${clusterId}/${rank}`;
    const takeover = this.takeovers.get(key);
    this.takeovers.delete(key);
    return takeover;
  }

  /**
   * Gives `lease`'s rank to its successor in a new lease and plans the restart its kind needs.
   * A promoted standby's own lease is closed first (`closeStandby`, in this transaction).
   */
  async move(
    tx: Tx,
    cluster: LoadedCluster,
    lease: LoadedLease & { rank: number },
    successor: Successor,
    loss: LeaseLoss,
    now: number,
    after: AfterCommit,
    closeStandby: (standby: LoadedLease, exit: LeaseExit) => Promise<void>,
  ): Promise<void> {
    const rank = lease.rank;
    const node = await this.successorNode(successor, rank, now, closeStandby);
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
    await this.reserve(tx, cluster, lease, node, scope, attempt, now);
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
    // A fresh node starts once a survivor has resealed the secrets to it (rendezvous: onResealed).
    if ("fresh" in successor && !(await this.planReseal(tx, cluster, lease, node.nodeId, after)))
      return;
    await this.planStarts(tx, cluster, rank, node.nodeId, scope, attempt, now, after);
  }

  /** For a cluster with sealed secrets, a survivor's reseal to `toNodeId`; false: none can. */
  private async planReseal(
    tx: Tx,
    cluster: LoadedCluster,
    lease: LoadedLease & { rank: number },
    toNodeId: string,
    after: AfterCommit,
  ): Promise<boolean> {
    if (secretNamesOf(cluster).length === 0) return true;
    const resealer = resealerOf(cluster, [lease.nodeId]);
    const reseal =
      resealer === undefined ? undefined : await resealRequest(tx, cluster, resealer, toNodeId);
    if (reseal === undefined) {
      after.finish = {
        status: "failed",
        reason: `rank ${lease.rank} lost and no surviving node can reseal its secrets to ${toNodeId}`,
      };
      return false;
    }
    after.sends.push(reseal);
    return true;
  }

  /** The node taking the rank; a standby's own lease ends as `promoted`. */
  private async successorNode(
    successor: Successor,
    rank: number,
    now: number,
    closeStandby: (standby: LoadedLease, exit: LeaseExit) => Promise<void>,
  ): Promise<PlacedNode> {
    if ("fresh" in successor) return successor.fresh;
    const standby = successor.standby;
    await closeStandby(standby, {
      status: "promoted",
      billedUntil: now,
      reason: `took rank ${rank}`,
      nowMs: now,
    });
    return {
      nodeId: standby.nodeId,
      accountId: standby.supplierAccountId,
      region: standby.region,
      zone: standby.zone,
      price: standby.nodePricePerHour,
    };
  }

  /** The successor's lease; in a full restart every other rank is reserved again too. */
  private async reserve(
    tx: Tx,
    cluster: LoadedCluster,
    lease: LoadedLease & { rank: number },
    node: PlacedNode,
    scope: ReturnType<typeof restartScope>,
    attempt: number,
    now: number,
  ): Promise<void> {
    const rank = lease.rank;
    const reservedUntilMs = now + this.options.reservationTtlMs;
    const seq = Math.max(...cluster.nodes.map((n) => n.seq)) + 1;
    await addLeases(
      tx,
      [
        {
          ...leaseRow(cluster.id, seq, node, successorPrice(node.price, lease.pricePerHour)),
          rank,
          attempt,
          role: rank === 0 ? "head" : "worker",
          status: "reserved",
          reserved_until: reservedUntilMs,
          started_at: null,
        },
      ],
      { nowMs: now, reason: `took rank ${rank} from ${lease.nodeId}` },
    );
    if (scope !== "all") return;
    // A full restart: every other rank runs again under the new attempt, against a new head.
    for (const other of cluster.nodes) {
      if (!other.active || other.rank === null || other.rank === rank) continue;
      await moveLease(
        tx,
        { clusterId: cluster.id, seq: other.seq, status: other.status },
        { type: "restart" },
        { attempt, reservedUntilMs },
        { nowMs: now, reason: `restart after rank ${rank} moved` },
      );
    }
    this.rendezvous.forgetHead(cluster.id);
  }

  /** The starts to send: the head's in a full restart (the others follow it), else the rank's. */
  private async planStarts(
    tx: Tx,
    cluster: LoadedCluster,
    rank: number,
    nodeId: string,
    scope: ReturnType<typeof restartScope>,
    attempt: number,
    now: number,
    after: AfterCommit,
  ): Promise<void> {
    const worldSize = rankCount(cluster);
    const spec = {
      ...cluster.spec,
      kind: cluster.kind,
      network: jobNetworkSpec(cluster.spec, worldSize, false),
    };
    const restartsHead = scope === "all" || rank === 0;
    const target = !restartsHead
      ? nodeId
      : rank === 0
        ? nodeId
        : cluster.nodes.find((n) => n.active && n.rank === 0)!.nodeId;
    // The head starts first; the others follow once it reports its port. Before the head
    // reported it, a moved rank waits in `reserved` and starts with the others.
    const head = restartsHead
      ? null
      : (this.rendezvous.headOf(cluster.id) ?? (await headOf(tx, cluster.id)));
    const sealed = await startBoxes(tx, cluster, target);
    if (head === undefined || !sealed.ready) return;
    const tls = await startTls(tx, cluster, target, now);
    after.sends.push({
      nodeId: target,
      message: startMessage(
        cluster.id,
        spec,
        restartsHead ? 0 : rank,
        attempt,
        worldSize,
        head,
        sealed.boxes,
        tls,
      ),
    });
  }
}
