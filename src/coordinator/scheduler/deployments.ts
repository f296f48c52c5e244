import { hash } from "node:crypto";
import type { z } from "zod";
import { isFinal } from "../../core/cluster-status.ts";
import { ErrorCode, TandemError } from "../../core/errors.ts";
import type { PutSecretsRequest } from "../../protocol/cluster-secrets.ts";
import type { ClusterView, DeployRequest } from "../../protocol/clusters.ts";
import { canonicalJson } from "../../protocol/canonical-json.ts";
import { IdPrefix, newId } from "../../protocol/ids.ts";
import { applyInTx } from "../registry/node-lifecycle.ts";
import { isUniqueViolation } from "../store/sql-errors.ts";
import type { Autoscaler } from "./autoscaler.ts";
import { authorizeCluster, type ClusterActor } from "./cluster-access.ts";
import { checkAutoscale, checkSecretNames, clusterRow } from "./deploy-request.ts";
import { addLeases, createCluster, extendCluster, renewReservations } from "./cluster-lifecycle.ts";
import type { ClusterQueue } from "./cluster-queue.ts";
import { storeSecrets } from "./cluster-secrets.ts";
import {
  appendClusterEvent,
  clusterView,
  loadCluster,
  readTasks,
  type ClusterSpec,
} from "./cluster-store.ts";
import { queueTask, queueTasks } from "./cluster-tasks.ts";
import { startTls } from "./cluster-tls.ts";
import { jobNetworkSpec } from "./cluster-network.ts";
import { leaseRow, startMessage } from "./leases.ts";
import type { OfferedNode, Offers } from "./offers.ts";
import type { Rendezvous } from "./rendezvous.ts";
import type { SchedulerResources } from "./resources.ts";
import { runInTransaction, type Tx } from "../store/transaction.ts";

type Deploy = z.output<typeof DeployRequest>;

/**
 * A consumer's actions on its clusters: deploy, extend, seal secrets, submit tasks. A deploy
 * charges escrow and reserves every node (its ranks and its standbys) in one transaction (the
 * database refuses a second active lease on a node), then starts the head rank; the head reports
 * its rendezvous port and the other ranks start against it (./rendezvous.ts). A deploy that loses
 * nodes to a concurrent one places again, up to four times.
 */
export class Deployments {
  constructor(
    private readonly resources: Pick<
      SchedulerResources,
      "db" | "clock" | "inventory" | "workers" | "payments" | "events"
    >,
    private readonly options: { reservationTtlMs: number },
    private readonly queue: ClusterQueue,
    private readonly offers: Offers,
    private readonly autoscaler: Autoscaler,
    private readonly rendezvous: Rendezvous,
  ) {}

  async deploy(accountId: string, request: Deploy, idempotencyKey?: string): Promise<ClusterView> {
    const key = idempotencyKey === undefined ? undefined : `${accountId}:${idempotencyKey}`;
    const requestHash = hash("sha256", canonicalJson(request), "hex");
    if (key !== undefined) {
      const replayed = await this.replayed(key, requestHash);
      if (replayed !== undefined) return replayed;
    }
    checkAutoscale(request);
    checkSecretNames(request);
    if ((request.kind === "container") !== (request.image !== undefined))
      throw new TandemError(
        ErrorCode.VALIDATION_FAILED,
        request.kind === "container"
          ? "a container cluster needs an image"
          : `an image is only for container clusters, not ${request.kind}`,
        { details: { field: "image" } },
      );
    const excluded = new Set<string>();
    for (let attempt = 0; attempt < 4; attempt++) {
      const offer = this.offers.offer(request, excluded);
      const nodes = offer.nodes;
      const clusterId = newId(IdPrefix.cluster, this.resources.clock.now());
      // Claimed in memory before the first await, so concurrent deploys on this coordinator never
      // race for the same nodes; the database's unique active-lease index guards across replicas.
      this.resources.inventory.markTaken(nodes.map((n) => n.nodeId));
      const idempotency = key === undefined ? undefined : { key, requestHash };
      const outcome = await this.reserve(clusterId, accountId, request, offer, idempotency).catch(
        async (error: unknown) => {
          await Promise.all(nodes.map((n) => this.resources.inventory.refresh(n.nodeId)));
          throw error;
        },
      );
      if (outcome.ok) {
        await this.started(clusterId, request, nodes);
        return clusterView(this.resources.db, clusterId);
      }
      await Promise.all(nodes.map((n) => this.resources.inventory.refresh(n.nodeId)));
      for (const id of outcome.conflicts) excluded.add(id);
    }
    throw new TandemError(
      ErrorCode.NO_CAPACITY,
      "nodes kept being taken by concurrent deploys; try again",
      { details: { needed: request.nodes + (request.shadow ?? 0) } },
    );
  }

  /** The cluster an earlier deploy with this key made; a different request under it is refused. */
  private async replayed(key: string, requestHash: string): Promise<ClusterView | undefined> {
    const existing = await this.resources.db
      .selectFrom("clusters")
      .select(["id", "spec"])
      .where("idempotency_key", "=", key)
      .executeTakeFirst();
    if (existing === undefined) return undefined;
    // The same key is the same deploy only with the same request (as the wallet's routes).
    const stored = (JSON.parse(existing.spec) as ClusterSpec).requestHash;
    if (stored !== undefined && stored !== requestHash)
      throw new TandemError(
        ErrorCode.IDEMPOTENCY_CONFLICT,
        "this idempotency key was already used for a different request",
        { details: { clusterId: existing.id } },
      );
    return clusterView(this.resources.db, existing.id);
  }

  /** After the reservation committed: nodes announced, then the first task or the head started. */
  private async started(clusterId: string, request: Deploy, nodes: readonly OfferedNode[]) {
    for (const n of nodes)
      this.resources.events.emit("node:status", {
        nodeId: n.nodeId,
        from: "available",
        to: n.standby ? "standby" : "leased",
        atMs: this.resources.clock.now(),
        reason: `${n.standby ? "standby" : "leased"} for ${clusterId}`,
      });
    // The deploy's command is the first task: an idle node takes it now.
    if (request.autoscale !== undefined)
      return this.queue.serial(clusterId, () => this.autoscaler.step(clusterId));
    // Ranks wait for their sealed secrets (`sealSecrets`).
    if (request.secretNames !== undefined) return;
    const spec = {
      ...request,
      env: request.env ?? {},
      image: request.image ?? null,
      network: jobNetworkSpec({ filters: request }, request.nodes, false),
    };
    const tls = await startTls(
      this.resources.db,
      { id: clusterId, kind: request.kind, hours: request.hours },
      nodes[0]!.nodeId,
      this.resources.clock.now(),
    );
    this.resources.workers.send(
      nodes[0]!.nodeId,
      startMessage(clusterId, spec, 0, 0, request.nodes, null, undefined, tls),
    );
  }

  /** One transaction: escrow first, then every node, or nothing at all. */
  private async reserve(
    clusterId: string,
    accountId: string,
    request: Deploy,
    offer: ReturnType<Offers["offer"]>,
    idempotency: { key: string; requestHash: string } | undefined,
  ): Promise<{ ok: true } | { ok: false; conflicts: string[] }> {
    const now = this.resources.clock.now();
    const nodes = offer.nodes;
    const scaled = request.autoscale !== undefined;
    const change = { nowMs: now, reason: `deployed by ${accountId}` };
    try {
      await runInTransaction(this.resources.db, async (tx) => {
        await createCluster(
          tx,
          clusterRow(clusterId, accountId, request, now, idempotency),
          change,
        );
        if (scaled) await queueTask(tx, clusterId, request.command, now);
        const charged = await this.resources.payments.charge(tx, {
          clusterId,
          consumerAccountId: accountId,
          currency: request.currency,
          nodes: [
            ...nodes.map((n) => ({ nodeId: n.nodeId, pricePerHour: n.billedPerHour })),
            ...offer.growth,
          ],
          minutes: request.hours * 60,
          paidMinutes: 0,
          idempotencyKey: `deploy:${clusterId}`,
          nowMs: now,
        });
        if (!charged.ok)
          throw new TandemError(ErrorCode.INSUFFICIENT_FUNDS, "not enough funds for this cluster", {
            details: charged.details,
          });
        await this.leaseNodes(tx, clusterId, nodes, scaled, now);
        await appendClusterEvent(tx, clusterId, now, "reserved", {
          nodes: nodes.map((n, i) =>
            n.standby
              ? { role: "standby", nodeId: n.nodeId, zone: n.zone }
              : { rank: i, nodeId: n.nodeId, zone: n.zone },
          ),
          reservationTtlMs: this.options.reservationTtlMs,
        });
        if (request.secretNames !== undefined)
          await appendClusterEvent(tx, clusterId, now, "secrets-pending", {
            names: request.secretNames,
          });
      });
      return { ok: true };
    } catch (error) {
      if (error instanceof ReservationConflict) return { ok: false, conflicts: error.nodeIds };
      if (isUniqueViolation(error))
        return {
          ok: false,
          conflicts: nodes
            .map((n) => n.nodeId)
            .filter((id) => this.resources.inventory.get(id)?.available !== true),
        };
      throw error;
    }
  }

  /** Every offered node leased (or standing by) for the cluster, or ReservationConflict. */
  private async leaseNodes(
    tx: Tx,
    clusterId: string,
    nodes: readonly OfferedNode[],
    scaled: boolean,
    now: number,
  ): Promise<void> {
    const conflicts: string[] = [];
    for (const node of nodes) {
      const role = node.standby ? "standby" : "leased";
      const leased = await applyInTx(
        tx,
        node.nodeId,
        { type: node.standby ? "standby" : "lease" },
        { actor: "scheduler", reason: `${role} for ${clusterId}`, nowMs: now },
      );
      if (!leased.ok) conflicts.push(node.nodeId);
    }
    if (conflicts.length > 0) throw new ReservationConflict(conflicts);
    await addLeases(
      tx,
      nodes.map((n, i) => {
        // A standby, or a node of an autoscaled cluster, is staged at once (idle) and billed
        // from the cluster's start; a rank is reserved until its worker accepts.
        const staged = n.standby || scaled;
        return {
          ...leaseRow(clusterId, i, n, n.billedPerHour),
          rank: n.standby ? null : i,
          role: n.standby ? "standby" : i === 0 ? "head" : "worker",
          status: staged ? ("staged" as const) : ("reserved" as const),
          reserved_until: staged ? null : now + this.options.reservationTtlMs,
          started_at: staged ? now : null,
          idle_since: scaled ? now : null,
        };
      }),
      { nowMs: now, reason: `reserved for ${clusterId}` },
    );
  }

  /**
   * Buys `hours` more. With the caller's idempotency key a retried request changes nothing more;
   * without one, the charge is keyed on the hours already bought (a retry after success buys again).
   */
  async extend(
    clusterId: string,
    actor: ClusterActor,
    hours: number,
    idempotencyKey?: string,
  ): Promise<ClusterView> {
    await this.queue.serial(clusterId, () =>
      runInTransaction(this.resources.db, async (tx) => {
        const now = this.resources.clock.now();
        const cluster = await loadCluster(tx, clusterId);
        authorizeCluster(cluster, actor, "extend");
        if (isFinal(cluster.status))
          throw new TandemError(
            ErrorCode.INVALID_TRANSITION,
            `cluster ${clusterId} has ended (${cluster.status})`,
          );
        const charged = await this.resources.payments.charge(tx, {
          clusterId,
          consumerAccountId: cluster.accountId,
          currency: cluster.currency,
          nodes: cluster.nodes
            .filter((n) => n.active)
            .map((n) => ({ nodeId: n.nodeId, pricePerHour: n.pricePerHour })),
          minutes: hours * 60,
          paidMinutes: cluster.hours * 60,
          idempotencyKey:
            idempotencyKey === undefined
              ? `extend:${clusterId}:${cluster.hours}+${hours}`
              : `extend:${clusterId}:key:${idempotencyKey}`,
          nowMs: now,
        });
        if (!charged.ok)
          throw new TandemError(ErrorCode.INSUFFICIENT_FUNDS, "not enough funds to extend", {
            details: charged.details,
          });
        if (charged.replayed) return; // this extension was bought already
        await extendCluster(tx, cluster, hours);
        await appendClusterEvent(tx, clusterId, now, "extended", {
          hours,
          totalHours: cluster.hours + hours,
        });
      }),
    );
    return clusterView(this.resources.db, clusterId);
  }

  /**
   * A pending cluster's sealed secrets (./cluster-secrets.ts): stored, the ranks' reservations
   * renewed from now, and the head started with its boxes.
   */
  async sealSecrets(
    clusterId: string,
    actor: ClusterActor,
    boxes: PutSecretsRequest["boxes"],
  ): Promise<void> {
    await this.queue.serial(clusterId, async () => {
      const now = this.resources.clock.now();
      const cluster = await runInTransaction(this.resources.db, async (tx) => {
        const cluster = await loadCluster(tx, clusterId);
        authorizeCluster(cluster, actor, "seal-secrets");
        await storeSecrets(tx, cluster, boxes, now);
        await renewReservations(tx, clusterId, now + this.options.reservationTtlMs);
        await appendClusterEvent(tx, clusterId, now, "secrets-sealed", {
          names: [...new Set(boxes.map((b) => b.name))],
          nodes: new Set(boxes.map((b) => b.nodeId)).size,
        });
        return cluster;
      });
      const head = cluster.nodes.find((n) => n.active && n.rank === 0);
      if (head !== undefined) await this.rendezvous.sendStart(cluster, head);
    });
  }

  /** Queues a task on an autoscaled cluster the caller owns; it runs as soon as a node is idle. */
  async submitTask(clusterId: string, actor: ClusterActor, command: string[]) {
    const seq = await this.submitTasks(clusterId, actor, [command]);
    return (await readTasks(this.resources.db, clusterId, seq))[0]!;
  }

  /**
   * Queues `commands` in order, in one transaction (all or none), then one round of scaling hands
   * them to idle nodes. Answers the first task's number; the others follow it.
   */
  async submitTasks(clusterId: string, actor: ClusterActor, commands: string[][]) {
    return this.queue.serial(clusterId, async () => {
      const seq = await runInTransaction(this.resources.db, async (tx) => {
        const cluster = await loadCluster(tx, clusterId);
        authorizeCluster(cluster, actor, "submit-task");
        if (cluster.autoscale === null)
          throw new TandemError(
            ErrorCode.INVALID_TRANSITION,
            `cluster ${clusterId} has no task queue (deploy it with autoscale)`,
          );
        if (isFinal(cluster.status))
          throw new TandemError(
            ErrorCode.INVALID_TRANSITION,
            `cluster ${clusterId} has ended (${cluster.status})`,
          );
        return queueTasks(tx, clusterId, commands, this.resources.clock.now());
      });
      await this.autoscaler.step(clusterId);
      return seq;
    });
  }
}

class ReservationConflict extends Error {
  constructor(readonly nodeIds: string[]) {
    super("nodes were taken concurrently");
  }
}
