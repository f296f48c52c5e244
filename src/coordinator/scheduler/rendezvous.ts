import type { z } from "zod";
import { isFinal } from "../../core/cluster-status.ts";
import { overlayAddressOf } from "../../protocol/cluster-network.ts";
import type { SecretsResealedMessage } from "../../protocol/worker-messages.ts";
import type { Autoscaler } from "./autoscaler.ts";
import type { ClusterQueue } from "./cluster-queue.ts";
import { storeResealed, secretsPending, startBoxes } from "./cluster-secrets.ts";
import {
  appendClusterEvent,
  loadCluster,
  type LoadedCluster,
  type LoadedLease,
} from "./cluster-store.ts";
import { startTls } from "./cluster-tls.ts";
import { jobNetworkSpec } from "./cluster-network.ts";
import { rankCount, startMessage } from "./leases.ts";
import type { SchedulerResources } from "./resources.ts";
import { runInTransaction } from "../store/transaction.ts";

/** Where a cluster's head listens for its other ranks. */
export interface HeadAddress {
  address: string;
  port: number;
}

/**
 * Rendezvous: ranks start against their head. The head (rank 0) starts first and reports its
 * port; each other rank gets its `job-start` with the head's address then. A start lost on the
 * way — the link was down, or the coordinator died between commit and send — is sent again when
 * its worker reconnects (the worker ignores a start it has). The heads this coordinator knows are
 * rebuilt at start from the `head-ready` events of runs still current.
 */
export class Rendezvous {
  private readonly heads = new Map<string, HeadAddress>();

  constructor(
    private readonly resources: Pick<SchedulerResources, "db" | "clock" | "workers" | "events">,
    private readonly queue: ClusterQueue,
    private readonly autoscaler: Autoscaler,
  ) {
    resources.events.on("cluster:status", ({ clusterId, to }) => {
      if (isFinal(to)) this.heads.delete(clusterId);
    });
  }

  /**
   * After a restart: each live cluster's head address, from its last `head-ready` event while
   * that head's run is still the current one. Without it, a rank whose start was lost (or a rank
   * moved to a fresh node) would wait for a head whose accept may never come again: a short head
   * run that already ended.
   */
  async restore(): Promise<void> {
    const rows = await this.resources.db
      .selectFrom("cluster_events")
      .innerJoin("clusters", "clusters.id", "cluster_events.cluster_id")
      .innerJoin("cluster_nodes", (join) =>
        join
          .onRef("cluster_nodes.cluster_id", "=", "clusters.id")
          .on("cluster_nodes.rank", "=", 0)
          .on("cluster_nodes.active", "=", 1),
      )
      .select([
        "cluster_events.cluster_id as clusterId",
        "cluster_events.detail as detail",
        "cluster_nodes.node_id as nodeId",
        "cluster_nodes.attempt as attempt",
      ])
      .where("clusters.status", "in", ["provisioning", "running"])
      .where("clusters.autoscale", "is", null)
      .where("cluster_events.type", "=", "head-ready")
      .orderBy("cluster_events.id")
      .execute();
    for (const row of rows) {
      const head = JSON.parse(row.detail) as HeadAddress & { nodeId: string; attempt: number };
      if (head.nodeId === row.nodeId && head.attempt === row.attempt)
        this.heads.set(row.clusterId, { address: head.address, port: head.port });
    }
  }

  /** The head's rendezvous address as this coordinator knows it, if it does. */
  headOf(clusterId: string): HeadAddress | undefined {
    return this.heads.get(clusterId);
  }

  /** A full restart: the next head reports anew. */
  forgetHead(clusterId: string): void {
    this.heads.delete(clusterId);
  }

  /**
   * The head's rendezvous address is known (from its `job-rendezvous`, or its accept): the ranks
   * waiting for it get their starts — all of them at the start or after a full restart; after a
   * coordinator restart, whichever start was lost (the head's accept arrives again then). A head
   * already known at that address changes nothing. False when the head gave no address (the
   * caller fails the cluster).
   */
  async headReady(
    nodeId: string,
    cluster: LoadedCluster,
    attempt: number,
    port: number | null,
    /** The head listens on the cluster overlay, where it is always rank 0's address. */
    overlay: true | undefined,
  ): Promise<boolean> {
    const address =
      overlay === true ? overlayAddressOf(0) : this.resources.workers.addressOf(nodeId);
    if (port === null || address === undefined) return false;
    const head = { address, port };
    const known = this.heads.get(cluster.id);
    if (known?.address === head.address && known.port === head.port) return true;
    this.heads.set(cluster.id, head);
    await appendClusterEvent(
      this.resources.db,
      cluster.id,
      this.resources.clock.now(),
      "head-ready",
      {
        nodeId,
        attempt,
        ...head,
      },
    );
    for (const lease of cluster.nodes)
      if (lease.active && lease.rank !== null && lease.rank > 0 && lease.status === "reserved") {
        const start = await this.rankStart(cluster, { ...lease, rank: lease.rank }, head);
        if (start !== undefined) this.resources.workers.send(lease.nodeId, start);
      }
    return true;
  }

  /**
   * A worker has (re)connected: send again the start of each of its leases still waiting to run.
   * A rank that waits for its head gets its start when the head's accept arrives (again).
   */
  async resendStarts(nodeId: string): Promise<void> {
    const waiting = await this.resources.db
      .selectFrom("cluster_nodes")
      .select(["cluster_id", "seq"])
      .where("node_id", "=", nodeId)
      .where("active", "=", 1)
      .where("status", "=", "reserved")
      .execute();
    for (const { cluster_id: clusterId, seq } of waiting)
      await this.queue.serial(clusterId, async () => {
        const cluster = await loadCluster(this.resources.db, clusterId);
        const lease = cluster.nodes.find((n) => n.seq === seq);
        if (isFinal(cluster.status) || lease?.active !== true || lease.status !== "reserved")
          return;
        await this.sendStart(cluster, lease);
      });
  }

  /** Sends `lease` its start if it can start now (callers hold the cluster's queue). */
  async sendStart(cluster: LoadedCluster, lease: LoadedLease): Promise<void> {
    const start = await this.pendingStart(cluster, lease);
    if (start !== undefined) this.resources.workers.send(lease.nodeId, start);
  }

  /** A surviving worker resealed the cluster's secrets to a fresh node: store, then start it. */
  async onResealed(
    fromNodeId: string,
    message: z.infer<typeof SecretsResealedMessage>,
  ): Promise<void> {
    const now = this.resources.clock.now();
    const cluster = await loadCluster(this.resources.db, message.clusterId);
    if (isFinal(cluster.status)) return;
    const stored = await runInTransaction(this.resources.db, (tx) =>
      storeResealed(tx, cluster, fromNodeId, message, now),
    );
    if (!stored) return;
    const lease = cluster.nodes.find(
      (n) => n.active && n.nodeId === message.toNodeId && n.status === "reserved",
    );
    if (lease !== undefined) await this.sendStart(cluster, lease);
  }

  private async pendingStart(cluster: LoadedCluster, lease: LoadedLease) {
    if (cluster.autoscale !== null) return this.autoscaler.taskStart(cluster, lease);
    if (lease.rank === null) return undefined;
    const head =
      lease.rank === 0 ? null : (this.heads.get(cluster.id) ?? (await this.storedHead(cluster)));
    if (head === undefined || (await secretsPending(this.resources.db, cluster))) return undefined;
    return this.rankStart(cluster, { ...lease, rank: lease.rank }, head);
  }

  /**
   * The head's address as its last `head-ready` event gives it, when that is of the head's
   * current run: another replica heard the head report (it holds the head's worker). Not kept,
   * so a later full restart through that replica is never answered from here with a stale head.
   */
  private async storedHead(cluster: LoadedCluster): Promise<HeadAddress | undefined> {
    const head = cluster.nodes.find((n) => n.active && n.rank === 0);
    const row = await this.resources.db
      .selectFrom("cluster_events")
      .select("detail")
      .where("cluster_id", "=", cluster.id)
      .where("type", "=", "head-ready")
      .orderBy("id", "desc")
      .executeTakeFirst();
    if (head === undefined || row === undefined) return undefined;
    const ready = JSON.parse(row.detail) as HeadAddress & { nodeId: string; attempt: number };
    return ready.nodeId === head.nodeId && ready.attempt === head.attempt
      ? { address: ready.address, port: ready.port }
      : undefined;
  }

  /**
   * The `job-start` of a lease's rank, with the boxes sealed to its node (if any); undefined while
   * its node waits for a failover's reseal (./cluster-secrets.ts).
   */
  private async rankStart(
    cluster: LoadedCluster,
    lease: LoadedLease & { rank: number },
    head: HeadAddress | null,
  ) {
    const sealed = await startBoxes(this.resources.db, cluster, lease.nodeId);
    if (!sealed.ready) return undefined;
    return startMessage(
      cluster.id,
      {
        ...cluster.spec,
        kind: cluster.kind,
        network: jobNetworkSpec(cluster.spec, rankCount(cluster), false),
      },
      lease.rank,
      lease.attempt,
      rankCount(cluster),
      head,
      sealed.boxes,
      await startTls(this.resources.db, cluster, lease.nodeId, this.resources.clock.now()),
    );
  }
}
