import { hash } from "node:crypto";
import type { FastifyBaseLogger } from "fastify";
import type { Kysely } from "kysely";
import type { z } from "zod";
import type { Clock } from "../../core/clock.ts";
import { isFinal, type ClusterStatus } from "../../core/cluster-status.ts";
import { ErrorCode, TandemError } from "../../core/errors.ts";
import { leaseServedMinutes, standbyPrice } from "../../core/failover.ts";
import { parseMoneyOrThrow } from "../../core/money.ts";
import { exitEnd, rankEndCause, type RankEnd } from "../../core/rank-end-cause.ts";
import type { NodeStatus } from "../../core/node-status.ts";
import { place, type PlacementRequest } from "../../core/placement.ts";
import type { PutSecretsRequest } from "../../protocol/cluster-secrets.ts";
import type {
  Autoscale,
  CapacityFilters,
  ClusterView,
  DeployRequest,
  SearchRequest,
  SearchResponse,
} from "../../protocol/clusters.ts";
import { canonicalJson } from "../../protocol/canonical-json.ts";
import { IdPrefix, newId } from "../../protocol/ids.ts";
import type {
  JobExitMessage,
  SecretsResealedMessage,
  WorkerJobMessage,
} from "../../protocol/worker-messages.ts";
import type { CoordinatorEvents } from "../events.ts";
import { appendLeaseOutcome } from "../registry/node-history.ts";
import { applyInTx } from "../registry/node-lifecycle.ts";
import { announceReputations, storeReputations } from "../registry/reputation.ts";
import type { Database } from "../store/schema.ts";
import {
  appendClusterEvent,
  clusterView,
  readTasks,
  formatUnits,
  loadCluster,
  loadClustersIn,
  type ClusterSpec,
  type LoadedCluster,
  type LoadedLease,
} from "./cluster-store.ts";
import { Autoscaler } from "./autoscaler.ts";
import { secretsPending, startBoxes, storeResealed, storeSecrets } from "./cluster-secrets.ts";
import { forgetClusterTls, startTls } from "./cluster-tls.ts";
import { Failover, type LeaseEnd } from "./failover.ts";
import type { Inventory } from "./inventory.ts";
import { DEFAULT_LOG_WRITER_OPTIONS, LogWriter } from "./log-writer.ts";
import {
  leaseId,
  leaseRow,
  rankCount,
  startMessage,
  toCurrency,
  toUsd,
  type PlacedNode,
} from "./leases.ts";
import { overlayAddressOf } from "../../protocol/cluster-network.ts";
import { jobNetworkSpec, networkAsk, OverlayExchange } from "./cluster-network.ts";
import type { ClusterPayments, LeaseSettlement, UnpaidLease } from "./payments.ts";
import type { WorkerChannel } from "./worker-channel.ts";

type Search = z.output<typeof SearchRequest> & {
  autoscale?: Autoscale | undefined;
  /** A deploy's kind: a `container` cluster needs nodes that run containers. */
  kind?: ClusterView["kind"] | undefined;
};
type Deploy = z.output<typeof DeployRequest>;

/** What the scheduler and its failover and autoscaler work with. */
export interface SchedulerDeps {
  db: Kysely<Database>;
  clock: Clock;
  inventory: Inventory;
  workers: WorkerChannel;
  payments: ClusterPayments;
  events: CoordinatorEvents;
  logger: FastifyBaseLogger;
}

export interface SchedulerOptions {
  /** A reserved worker must accept its rank within this, ms, or the reservation lapses. */
  reservationTtlMs: number;
  /** How often served time is settled and expiries are checked, ms. */
  tickMs: number;
  /** Units of each currency per US dollar (6 decimals): the price oracle's rates. */
  unitsPerUsd: Readonly<Record<string, bigint>>;
  /** Most log lines kept per cluster; later lines are dropped, and one line says so. */
  maxLogLinesPerCluster: number;
  /** Most output kept per rank, bytes (default 64 MiB; see log-writer.ts). */
  maxLogBytesPerRank?: number | undefined;
  /** A standby's hourly rate, as a percentage of its node's own price. */
  standbyPricePercent: number;
  /** An autoscaled cluster releases a node idle this long when no task waits, ms. */
  scaleDownIdleMs: number;
  /** Whether nodes must build job networks (../config.ts `jobNetworks`); default optional. */
  jobNetworks?: "required" | "optional" | undefined;
}

type JobMessage = WorkerJobMessage;

/**
 * The scheduler: search, deploy, run, fail over, end. A deploy charges escrow and reserves every
 * node (its ranks and its standbys) in one transaction (the database refuses a second active lease
 * on a node), then starts the head rank; the head reports its rendezvous port and the other ranks
 * start against it. A node that fails while leased is slashed and its rank moves to a standby or a
 * fresh node (./failover.ts). Every end path — completion, failure, termination, expiry — goes
 * through `finish`, which settles served minutes, refunds the rest and releases every node.
 *
 * Work on one cluster is serialized (`serial`), so a failover, a worker's messages and the tick
 * never interleave on it; the database's compare-and-set updates guard across replicas.
 */
export class Scheduler {
  private readonly heads = new Map<string, { address: string; port: number }>();
  /** Job output, stored off the message path (log-writer.ts). */
  readonly logs: LogWriter;
  private readonly queues = new Map<string, Promise<unknown>>();
  /** Each running lease's served minutes as last settled by a tick (lost on restart: harmless). */
  private settledMinutes = new Map<string, number>();
  private readonly failover: Failover;
  private readonly autoscaler: Autoscaler;
  private readonly overlays: OverlayExchange;
  private timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly deps: SchedulerDeps,
    private readonly options: SchedulerOptions,
  ) {
    this.logs = new LogWriter(deps, {
      ...DEFAULT_LOG_WRITER_OPTIONS,
      maxLinesPerCluster: options.maxLogLinesPerCluster,
      ...(options.maxLogBytesPerRank === undefined
        ? {}
        : { maxBytesPerRank: options.maxLogBytesPerRank }),
    });
    this.overlays = new OverlayExchange(deps);
    this.failover = new Failover(deps, options, {
      serial: (clusterId, work) => this.serial(clusterId, work),
      finish: (clusterId, status, reason) => this.finish(clusterId, status, reason),
      endLease: (tx, cluster, lease, end) => this.endLease(tx, cluster, lease, end),
      placeReplacement: (cluster, lease, quiet) =>
        this.placeFresh(cluster, lease.pricePerHour, quiet, lease.nodeId),
      requeue: (tx, clusterId, leaseSeq) => this.autoscaler.requeue(tx, clusterId, leaseSeq),
      rescale: (clusterId) => this.autoscaler.step(clusterId),
      headOf: (clusterId) => this.heads.get(clusterId),
      forgetHead: (clusterId) => this.heads.delete(clusterId),
    });
    this.autoscaler = new Autoscaler(
      deps,
      { reservationTtlMs: options.reservationTtlMs, idleReleaseMs: options.scaleDownIdleMs },
      {
        settleLease: (tx, cluster, lease, nowMs) => this.settleLease(tx, cluster, lease, nowMs),
        endLease: (tx, cluster, lease, end) => this.endLease(tx, cluster, lease, end),
        placeFresh: (cluster, ceiling) => this.placeFresh(cluster, ceiling, true),
      },
    );
    deps.events.on("node:status", ({ nodeId, to, reason, lastSeenMs, unheardSinceRestart }) => {
      if (to !== "offline" && to !== "revoked") return;
      // A node that never came back after this coordinator's restart moves on unblamed: the
      // outage may have been the coordinator's own.
      void this.failover
        .onNodeLost(nodeId, {
          end:
            unheardSinceRestart === true
              ? "coordinator-outage"
              : to === "revoked"
                ? "node-revoked"
                : "node-offline",
          reason: `went ${to}: ${reason}`,
          lastSeenMs,
        })
        .catch((error: unknown) => this.logError(error, "node loss"));
      // A drain lasts until the worker stops: once offline, it comes back rentable.
      void this.failover.clearDraining(nodeId);
    });
    // A revoked device's node is lost at once (the revocation announces no status change).
    deps.events.on("device:revoked", ({ nodeId }) => {
      void this.failover
        .onNodeLost(nodeId, { end: "node-revoked", reason: "device revoked" })
        .catch((error: unknown) => this.logError(error, "node loss"));
    });
  }

  /** Restores what memory held before a restart, then starts the tick. */
  async start(): Promise<void> {
    await this.restoreHeads();
    this.timer = setInterval(
      () => void this.tick().catch((error: unknown) => this.logError(error, "tick")),
      this.options.tickMs,
    );
    this.timer.unref();
  }

  /**
   * After a restart: each live cluster's head address, from its last `head-ready` event while
   * that head's run is still the current one. Without it, a rank whose start was lost (or a rank
   * moved to a fresh node) would wait for a head whose accept may never come again: a short head
   * run that already ended.
   */
  private async restoreHeads(): Promise<void> {
    const rows = await this.deps.db
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
      const head = JSON.parse(row.detail) as {
        nodeId: string;
        attempt: number;
        address: string;
        port: number;
      };
      if (head.nodeId === row.nodeId && head.attempt === row.attempt)
        this.heads.set(row.clusterId, { address: head.address, port: head.port });
    }
  }

  /** Stops the tick and waits for the work under way on every cluster (before the store closes). */
  async stop(): Promise<void> {
    clearInterval(this.timer);
    await Promise.allSettled([...this.queues.values()]);
    await this.logs.idle();
  }

  search(request: Search): SearchResponse {
    const rate = this.rate(request.currency);
    const needed = request.nodes + (request.shadow ?? 0);
    const result = place(
      this.deps.inventory,
      this.placementRequest(request, rate, new Set()),
      (usd) => formatUnits(toCurrency(usd, rate)),
    );
    const offers = result.ok ? result.nodes : [];
    return {
      satisfiable: result.ok,
      needed,
      matching: result.matching,
      currency: request.currency,
      offers: offers.map((n) => ({
        nodeId: n.nodeId,
        region: n.region,
        zone: n.zone,
        gpuModel: n.gpuModel,
        gpuCount: n.gpuCount,
        pricePerHour: formatUnits(toCurrency(n.pricePerHour, rate)),
      })),
      funnel: result.ok ? [] : [...result.funnel],
      explanation: result.ok
        ? `${result.matching} matching nodes; ${needed} chosen`
        : result.explanation,
    };
  }

  /**
   * The nodes a deploy would get now, each with what it would be billed per hour in the request's
   * currency: ranks at their price, standbys at the standby rate (for quotes).
   */
  offerFor(request: Search): Array<{ nodeId: string; pricePerHour: bigint; standby: boolean }> {
    const rate = this.rate(request.currency);
    const placed = this.placeOrThrow(request, rate, new Set());
    const offer = placed.map((n, i) => {
      const standby = i >= request.nodes;
      const price = toCurrency(n.pricePerHour, rate);
      return {
        nodeId: n.nodeId,
        pricePerHour: standby ? standbyPrice(price, this.options.standbyPricePercent) : price,
        standby,
      };
    });
    return [...offer, ...growthSlots(request, offer)];
  }

  async deploy(accountId: string, request: Deploy, idempotencyKey?: string): Promise<ClusterView> {
    const key = idempotencyKey === undefined ? undefined : `${accountId}:${idempotencyKey}`;
    const requestHash = hash("sha256", canonicalJson(request), "hex");
    if (key !== undefined) {
      const existing = await this.deps.db
        .selectFrom("clusters")
        .select(["id", "spec"])
        .where("idempotency_key", "=", key)
        .executeTakeFirst();
      if (existing !== undefined) {
        // The same key is the same deploy only with the same request (as the wallet's routes).
        const stored = (JSON.parse(existing.spec) as ClusterSpec).requestHash;
        if (stored !== undefined && stored !== requestHash)
          throw new TandemError(
            ErrorCode.IDEMPOTENCY_CONFLICT,
            "this idempotency key was already used for a different request",
            { details: { clusterId: existing.id } },
          );
        return clusterView(this.deps.db, existing.id);
      }
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
    const rate = this.rate(request.currency);
    const excluded = new Set<string>();
    for (let attempt = 0; attempt < 4; attempt++) {
      const placed = this.placeOrThrow(request, rate, excluded);
      const clusterId = newId(IdPrefix.cluster, this.deps.clock.now());
      const nodes = placed.map((n) => ({
        nodeId: n.nodeId,
        accountId: n.accountId,
        region: n.region,
        zone: n.zone,
        price: toCurrency(n.pricePerHour, rate),
      }));
      // Claimed in memory before the first await, so concurrent deploys on this coordinator never
      // race for the same nodes; the database's unique active-lease index guards across replicas.
      this.deps.inventory.markTaken(nodes.map((n) => n.nodeId));
      const idempotency = key === undefined ? undefined : { key, requestHash };
      const outcome = await this.reserve(clusterId, accountId, request, nodes, idempotency).catch(
        async (error: unknown) => {
          await Promise.all(nodes.map((n) => this.deps.inventory.refresh(n.nodeId)));
          throw error;
        },
      );
      if (outcome.ok) {
        for (const [i, n] of nodes.entries())
          this.deps.events.emit("node:status", {
            nodeId: n.nodeId,
            from: "available",
            to: i < request.nodes ? "leased" : "standby",
            atMs: this.deps.clock.now(),
            reason: `${i < request.nodes ? "leased" : "standby"} for ${clusterId}`,
          });
        if (request.autoscale !== undefined) {
          // The deploy's command is the first task: an idle node takes it now.
          await this.serial(clusterId, () => this.autoscaler.step(clusterId));
          return clusterView(this.deps.db, clusterId);
        }
        // Ranks wait for their sealed secrets (`sealSecrets`).
        if (request.secretNames !== undefined) return clusterView(this.deps.db, clusterId);
        const spec = {
          ...request,
          env: request.env ?? {},
          image: request.image ?? null,
          network: jobNetworkSpec({ filters: request }, request.nodes, false),
        };
        const tls = await startTls(
          this.deps.db,
          { id: clusterId, kind: request.kind, hours: request.hours },
          nodes[0]!.nodeId,
          this.deps.clock.now(),
        );
        this.deps.workers.send(
          nodes[0]!.nodeId,
          startMessage(clusterId, spec, 0, 0, request.nodes, null, undefined, tls),
        );
        return clusterView(this.deps.db, clusterId);
      }
      await Promise.all(nodes.map((n) => this.deps.inventory.refresh(n.nodeId)));
      for (const id of outcome.conflicts) excluded.add(id);
    }
    throw new TandemError(
      ErrorCode.NO_CAPACITY,
      "nodes kept being taken by concurrent deploys; try again",
      { details: { needed: request.nodes + (request.shadow ?? 0) } },
    );
  }

  /** Ranks first, then standbys: placement answers `nodes + shadow` nodes, cheapest first. */
  private placeOrThrow(request: Search, rate: bigint, excluded: ReadonlySet<string>) {
    const placed = place(
      this.deps.inventory,
      this.placementRequest(request, rate, excluded),
      (usd) => formatUnits(toCurrency(usd, rate)),
    );
    if (!placed.ok) {
      const shadow = request.shadow ?? 0;
      const needed = request.nodes + shadow;
      throw new TandemError(ErrorCode.NO_CAPACITY, placed.explanation, {
        details: {
          funnel: placed.funnel,
          needed,
          ...(shadow > 0 ? { nodes: request.nodes, shadow } : {}),
          shortfall: Math.max(1, needed - placed.matching),
        },
      });
    }
    return placed.nodes;
  }

  /** One transaction: escrow first, then every node, or nothing at all. */
  private async reserve(
    clusterId: string,
    accountId: string,
    request: Deploy,
    nodes: readonly PlacedNode[],
    idempotency: { key: string; requestHash: string } | undefined,
  ): Promise<{ ok: true } | { ok: false; conflicts: string[] }> {
    const now = this.deps.clock.now();
    const billed = nodes.map((n, i) =>
      i < request.nodes ? n.price : standbyPrice(n.price, this.options.standbyPricePercent),
    );
    const scaled = request.autoscale !== undefined;
    try {
      await this.deps.db.transaction().execute(async (tx) => {
        await tx
          .insertInto("clusters")
          .values({
            id: clusterId,
            account_id: accountId,
            kind: request.kind,
            // An autoscaled cluster runs (and bills its nodes) from the start: they idle for tasks.
            status: scaled ? "running" : "provisioning",
            spec: JSON.stringify({
              command: request.command,
              env: request.env ?? {},
              image: request.image ?? null,
              filters: filtersOf(request),
              ...(request.secretNames === undefined ? {} : { secretNames: request.secretNames }),
              ...(request.limits === undefined ? {} : { limits: request.limits }),
              ...(idempotency === undefined ? {} : { requestHash: idempotency.requestHash }),
            } satisfies ClusterSpec),
            node_count: request.nodes,
            shadow: request.shadow ?? 0,
            hours: request.hours,
            currency: request.currency,
            idempotency_key: idempotency?.key ?? null,
            created_at: now,
            started_at: scaled ? now : null,
            ends_at: scaled ? now + request.hours * 3_600_000 : null,
            ended_at: null,
            autoscale: scaled ? JSON.stringify(request.autoscale) : null,
          })
          .execute();
        if (scaled) await this.autoscaler.submit(tx, clusterId, request.command);
        const charged = await this.deps.payments.charge(tx, {
          clusterId,
          consumerAccountId: accountId,
          currency: request.currency,
          nodes: [
            ...nodes.map((n, i) => ({ nodeId: n.nodeId, pricePerHour: billed[i]! })),
            ...growthSlots(
              request,
              nodes.map((n) => ({ pricePerHour: n.price })),
            ),
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
        const conflicts: string[] = [];
        for (const [i, node] of nodes.entries()) {
          const leased = await applyInTx(
            tx,
            node.nodeId,
            { type: i < request.nodes ? "lease" : "standby" },
            {
              actor: "scheduler",
              reason: `${i < request.nodes ? "leased" : "standby"} for ${clusterId}`,
              nowMs: now,
            },
          );
          if (!leased.ok) conflicts.push(node.nodeId);
        }
        if (conflicts.length > 0) throw new ReservationConflict(conflicts);
        await tx
          .insertInto("cluster_nodes")
          .values(
            nodes.map((n, i) => {
              const standby = i >= request.nodes;
              // A standby, or a node of an autoscaled cluster, is staged at once (idle) and billed
              // from the cluster's start; a rank is reserved until its worker accepts.
              const staged = standby || scaled;
              return {
                ...leaseRow(clusterId, i, n, billed[i]!),
                rank: standby ? null : i,
                role: standby ? "standby" : i === 0 ? "head" : "worker",
                status: staged ? "staged" : "reserved",
                reserved_until: staged ? null : now + this.options.reservationTtlMs,
                started_at: staged ? now : null,
                idle_since: scaled ? now : null,
              };
            }),
          )
          .execute();
        await appendClusterEvent(tx, clusterId, now, "reserved", {
          nodes: nodes.map((n, i) =>
            i < request.nodes
              ? { rank: i, nodeId: n.nodeId, zone: n.zone }
              : { role: "standby", nodeId: n.nodeId, zone: n.zone },
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
            .filter((id) => this.deps.inventory.get(id)?.available !== true),
        };
      throw error;
    }
  }

  async terminate(
    clusterId: string,
    actor: { accountId: string; admin: boolean },
  ): Promise<ClusterView> {
    const cluster = await loadCluster(this.deps.db, clusterId);
    if (!actor.admin && cluster.accountId !== actor.accountId)
      throw new TandemError(ErrorCode.NOT_FOUND, `no cluster ${clusterId}`);
    await this.serial(clusterId, async () => {
      const current = await loadCluster(this.deps.db, clusterId);
      if (!isFinal(current.status))
        await this.finish(clusterId, "terminated", `terminated by account:${actor.accountId}`);
    });
    return clusterView(this.deps.db, clusterId);
  }

  /**
   * Buys `hours` more. With the caller's idempotency key a retried request changes nothing more;
   * without one, the charge is keyed on the hours already bought (a retry after success buys again).
   */
  async extend(
    clusterId: string,
    accountId: string,
    hours: number,
    idempotencyKey?: string,
  ): Promise<ClusterView> {
    await this.serial(clusterId, () => this.extendNow(clusterId, accountId, hours, idempotencyKey));
    return clusterView(this.deps.db, clusterId);
  }

  private async extendNow(
    clusterId: string,
    accountId: string,
    hours: number,
    idempotencyKey: string | undefined,
  ): Promise<void> {
    const now = this.deps.clock.now();
    await this.deps.db.transaction().execute(async (tx) => {
      const cluster = await loadCluster(tx, clusterId);
      if (cluster.accountId !== accountId)
        throw new TandemError(ErrorCode.NOT_FOUND, `no cluster ${clusterId}`);
      if (isFinal(cluster.status))
        throw new TandemError(
          ErrorCode.INVALID_TRANSITION,
          `cluster ${clusterId} has ended (${cluster.status})`,
        );
      const charged = await this.deps.payments.charge(tx, {
        clusterId,
        consumerAccountId: accountId,
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
      await tx
        .updateTable("clusters")
        .set({
          hours: cluster.hours + hours,
          ...(cluster.endsAtMs === null ? {} : { ends_at: cluster.endsAtMs + hours * 3_600_000 }),
        })
        .where("id", "=", clusterId)
        .execute();
      await appendClusterEvent(tx, clusterId, now, "extended", {
        hours,
        totalHours: cluster.hours + hours,
      });
    });
  }

  /**
   * A pending cluster's sealed secrets (./cluster-secrets.ts): stored, the ranks' reservations
   * renewed from now, and the head started with its boxes.
   */
  async sealSecrets(
    clusterId: string,
    accountId: string,
    boxes: PutSecretsRequest["boxes"],
  ): Promise<void> {
    await this.serial(clusterId, async () => {
      const now = this.deps.clock.now();
      const cluster = await this.deps.db.transaction().execute(async (tx) => {
        const cluster = await loadCluster(tx, clusterId);
        if (cluster.accountId !== accountId)
          throw new TandemError(ErrorCode.NOT_FOUND, `no cluster ${clusterId}`);
        await storeSecrets(tx, cluster, boxes, now);
        await tx
          .updateTable("cluster_nodes")
          .set({ reserved_until: now + this.options.reservationTtlMs })
          .where("cluster_id", "=", clusterId)
          .where("active", "=", 1)
          .where("status", "=", "reserved")
          .execute();
        await appendClusterEvent(tx, clusterId, now, "secrets-sealed", {
          names: [...new Set(boxes.map((b) => b.name))],
          nodes: new Set(boxes.map((b) => b.nodeId)).size,
        });
        return cluster;
      });
      const head = cluster.nodes.find((n) => n.active && n.rank === 0);
      if (head === undefined) return;
      const start = await this.pendingStart(cluster, head);
      if (start !== undefined) this.deps.workers.send(head.nodeId, start);
    });
  }

  /** Messages from the worker that serves `nodeId`. */
  async onJobMessage(nodeId: string, message: JobMessage): Promise<void> {
    if (message.type === "drain") return this.failover.drain(nodeId, message.reason);
    if (message.type === "secrets-resealed")
      return this.serial(message.clusterId, () => this.onResealed(nodeId, message));
    if (message.type === "job-log") {
      // Logs skip the cluster's queue (they change no state) and are written in batches.
      this.logs.offer(nodeId, message);
      return;
    }
    if (message.type === "job-exit") await this.logs.written();
    await this.serial(message.clusterId, async () => {
      const lease = await this.activeLease(nodeId, message);
      if (lease === undefined) return; // not this node's run (stale attempt, or released): ignore
      // Workers resend accepts and exits after a reconnect (worker/jobs/job-outbox.ts): only a
      // run still under way changes anything. An exit already recorded is judged again, in case
      // the coordinator died between recording it and ending the cluster.
      if (lease.status !== "reserved" && lease.status !== "running") {
        const recorded = lease.status === "exited" || lease.status === "failed";
        if (message.type === "job-exit" && recorded && !lease.autoscaled)
          await this.judgeExit(message.clusterId, message.rank, lease.status === "exited");
        return;
      }
      if (message.type === "job-rendezvous") {
        const cluster = await loadCluster(this.deps.db, message.clusterId);
        if (lease.status === "reserved" && !isFinal(cluster.status) && cluster.autoscale === null)
          await this.headReady(nodeId, cluster, message.attempt, message.port, message.overlay);
        return;
      }
      if (message.type === "job-accepted") return this.onAccepted(nodeId, lease.seq, message);
      if (message.type === "job-network")
        return this.overlays.onJobNetwork(nodeId, message, this.deps.clock.now());
      // A run its worker fenced while this lease stayed active: the coordinator was away (a
      // restart), not the node, so the rank moves without a slash.
      if (message.fenced === true)
        return this.failover.failLease(message.clusterId, lease.seq, {
          end: "link-lost",
          reason: `rank ${message.rank} stopped by its worker while the coordinator was unreachable`,
        });
      // A sealed secret that does not open on its node was sealed wrong: the consumer's cause.
      if (message.secretsRefused === true)
        return this.finish(
          message.clusterId,
          "failed",
          `rank ${message.rank}: ${message.error ?? "a sealed secret did not open"}`,
        );
      // A node that could not run its part failed the lease (src/core/rank-end-cause.ts); a job
      // that exited, whatever its code, that ran into a limit, or that the consumer's image or spec
      // kept from starting, is the consumer's business: no failover, no slash.
      const end = exitEnd({ ...message, limitExceeded: message.limitExceeded !== undefined });
      if (end === "start-failed")
        return this.failover.failLease(message.clusterId, lease.seq, {
          end,
          reason: `could not run rank ${message.rank}: ${message.error}`,
        });
      if (lease.autoscaled) return this.onTaskExit(lease.seq, message, end);
      return this.onExit(message, end);
    });
  }

  /**
   * A worker has (re)connected: send again the start of each of its leases still waiting to run.
   * A start sent while the link was down, or lost with a coordinator killed between commit and
   * send, would otherwise wait for the reservation to lapse; the worker ignores a start it has.
   * A rank that waits for its head gets its start when the head's accept arrives (again).
   */
  async onWorkerConnected(nodeId: string): Promise<void> {
    const waiting = await this.deps.db
      .selectFrom("cluster_nodes")
      .select(["cluster_id", "seq"])
      .where("node_id", "=", nodeId)
      .where("active", "=", 1)
      .where("status", "=", "reserved")
      .execute();
    for (const { cluster_id: clusterId, seq } of waiting)
      await this.serial(clusterId, async () => {
        const cluster = await loadCluster(this.deps.db, clusterId);
        const lease = cluster.nodes.find((n) => n.seq === seq);
        if (isFinal(cluster.status) || lease?.active !== true || lease.status !== "reserved")
          return;
        const message = await this.pendingStart(cluster, lease);
        if (message !== undefined) this.deps.workers.send(nodeId, message);
      });
  }

  private async pendingStart(cluster: LoadedCluster, lease: LoadedLease) {
    if (cluster.autoscale !== null) return this.autoscaler.taskStart(cluster, lease);
    if (lease.rank === null) return undefined;
    const head = lease.rank === 0 ? null : this.heads.get(cluster.id);
    if (head === undefined || (await secretsPending(this.deps.db, cluster))) return undefined;
    return this.rankStart(cluster, { ...lease, rank: lease.rank }, head);
  }

  /**
   * The `job-start` of a lease's rank, with the boxes sealed to its node (if any); undefined while
   * its node waits for a failover's reseal (./cluster-secrets.ts).
   */
  private async rankStart(
    cluster: LoadedCluster,
    lease: LoadedLease & { rank: number },
    head: { address: string; port: number } | null,
  ) {
    const sealed = await startBoxes(this.deps.db, cluster, lease.nodeId);
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
      await startTls(this.deps.db, cluster, lease.nodeId, this.deps.clock.now()),
    );
  }

  /** A surviving worker resealed the cluster's secrets to a fresh node: store, then start it. */
  private async onResealed(
    fromNodeId: string,
    message: z.infer<typeof SecretsResealedMessage>,
  ): Promise<void> {
    const now = this.deps.clock.now();
    const cluster = await loadCluster(this.deps.db, message.clusterId);
    if (isFinal(cluster.status)) return;
    const stored = await this.deps.db
      .transaction()
      .execute((tx) => storeResealed(tx, cluster, fromNodeId, message, now));
    if (!stored) return;
    const lease = cluster.nodes.find(
      (n) => n.active && n.nodeId === message.toNodeId && n.status === "reserved",
    );
    const start = lease === undefined ? undefined : await this.pendingStart(cluster, lease);
    if (start !== undefined) this.deps.workers.send(message.toNodeId, start);
  }

  private async activeLease(
    nodeId: string,
    message: { clusterId: string; rank: number; attempt: number },
  ) {
    const lease = await this.deps.db
      .selectFrom("cluster_nodes")
      .innerJoin("clusters", "clusters.id", "cluster_nodes.cluster_id")
      .select([
        "cluster_nodes.seq as seq",
        "cluster_nodes.status as status",
        "clusters.autoscale as autoscale",
      ])
      .where("cluster_id", "=", message.clusterId)
      .where("node_id", "=", nodeId)
      .where("rank", "=", message.rank)
      .where("attempt", "=", message.attempt)
      .where("active", "=", 1)
      .executeTakeFirst();
    return lease === undefined
      ? undefined
      : { seq: lease.seq, status: lease.status, autoscaled: lease.autoscale !== null };
  }

  /**
   * The head's rendezvous address is known (from its `job-rendezvous`, or its accept): the ranks
   * waiting for it get their starts — all of them at the start or after a full restart; after a
   * coordinator restart, whichever start was lost (the head's accept arrives again then). A head
   * already known at that address changes nothing. False when the head gave no address (the
   * cluster has failed).
   */
  private async headReady(
    nodeId: string,
    cluster: LoadedCluster,
    attempt: number,
    port: number | null,
    /** The head listens on the cluster overlay, where it is always rank 0's address. */
    overlay: true | undefined,
  ): Promise<boolean> {
    const address = overlay === true ? overlayAddressOf(0) : this.deps.workers.addressOf(nodeId);
    if (port === null || address === undefined) {
      await this.finish(cluster.id, "failed", "the head did not report a rendezvous address");
      return false;
    }
    const head = { address, port };
    const known = this.heads.get(cluster.id);
    if (known?.address === head.address && known.port === head.port) return true;
    this.heads.set(cluster.id, head);
    await appendClusterEvent(this.deps.db, cluster.id, this.deps.clock.now(), "head-ready", {
      nodeId,
      attempt,
      ...head,
    });
    for (const lease of cluster.nodes)
      if (lease.active && lease.rank !== null && lease.rank > 0 && lease.status === "reserved") {
        const start = await this.rankStart(cluster, { ...lease, rank: lease.rank }, head);
        if (start !== undefined) this.deps.workers.send(lease.nodeId, start);
      }
    return true;
  }

  private async onAccepted(
    nodeId: string,
    seq: number,
    message: {
      clusterId: string;
      rank: number;
      attempt: number;
      port: number | null;
      overlay?: true | undefined;
    },
  ): Promise<void> {
    const { clusterId, rank, attempt } = message;
    const now = this.deps.clock.now();
    const cluster = await loadCluster(this.deps.db, clusterId);
    if (isFinal(cluster.status)) return;
    if (rank === 0 && cluster.autoscale === null) {
      if (!(await this.headReady(nodeId, cluster, attempt, message.port, message.overlay))) return;
    }
    await this.deps.db.transaction().execute(async (tx) => {
      await tx
        .updateTable("cluster_nodes")
        .set({ status: "running", reserved_until: null })
        .where("cluster_id", "=", clusterId)
        .where("seq", "=", seq)
        .execute();
      // Billing starts when a lease first runs (and no earlier than the cluster's start).
      await tx
        .updateTable("cluster_nodes")
        .set({ started_at: now })
        .where("cluster_id", "=", clusterId)
        .where("seq", "=", seq)
        .where("started_at", "is", null)
        .execute();
      const takeover = this.failover.tookOver(clusterId, rank);
      if (takeover !== undefined) {
        await appendClusterEvent(tx, clusterId, now, "takeover", {
          rank,
          nodeId,
          fromNodeId: takeover.fromNodeId,
          attempt,
          takeoverMs: now - takeover.detectedAtMs,
          ...(takeover.lastSeenMs === undefined
            ? {}
            : { sinceLastSeenMs: now - takeover.lastSeenMs }),
        });
      }
      if (cluster.status !== "provisioning") return;
      const waiting = await tx
        .selectFrom("cluster_nodes")
        .select("seq")
        .where("cluster_id", "=", clusterId)
        .where("active", "=", 1)
        .where("status", "=", "reserved")
        .execute();
      if (waiting.length > 0) return;
      const hours = (
        await tx
          .selectFrom("clusters")
          .select("hours")
          .where("id", "=", clusterId)
          .executeTakeFirstOrThrow()
      ).hours;
      await tx
        .updateTable("clusters")
        .set({ status: "running", started_at: now, ends_at: now + hours * 3_600_000 })
        .where("id", "=", clusterId)
        .where("status", "=", "provisioning")
        .execute();
      await appendClusterEvent(tx, clusterId, now, "running", {
        provisioningMs: now - cluster.createdAtMs,
      });
    });
  }

  /** A task of an autoscaled cluster ended: record it, then the next round of scaling. */
  private async onTaskExit(
    leaseSeq: number,
    message: z.infer<typeof JobExitMessage>,
    end: RankEnd,
  ): Promise<void> {
    const now = this.deps.clock.now();
    await this.deps.db.transaction().execute(async (tx) => {
      await this.autoscaler.onTaskExit(
        tx,
        message.clusterId,
        leaseSeq,
        message.attempt,
        message.exitCode,
      );
      await appendClusterEvent(tx, message.clusterId, now, "task-ended", {
        task: message.attempt,
        rank: message.rank,
        exitCode: message.exitCode,
        signal: message.signal,
        ...(message.limitExceeded === undefined ? {} : { limitExceeded: message.limitExceeded }),
        ...(message.error === null ? {} : { error: message.error }),
        cause: rankEndCause(end),
        end,
      });
    });
    await this.autoscaler.step(message.clusterId);
  }

  /** Queues a task on an autoscaled cluster the caller owns; it runs as soon as a node is idle. */
  async submitTask(clusterId: string, accountId: string, command: string[]) {
    const seq = await this.serial(clusterId, async () => {
      const seq = await this.deps.db.transaction().execute(async (tx) => {
        const cluster = await loadCluster(tx, clusterId);
        if (cluster.accountId !== accountId)
          throw new TandemError(ErrorCode.NOT_FOUND, `no cluster ${clusterId}`);
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
        return this.autoscaler.submit(tx, clusterId, command);
      });
      await this.autoscaler.step(clusterId);
      return seq;
    });
    return (await readTasks(this.deps.db, clusterId)).find((t) => t.seq === seq)!;
  }

  private async onExit(message: z.infer<typeof JobExitMessage>, end: RankEnd): Promise<void> {
    const now = this.deps.clock.now();
    const ok = message.exitCode === 0;
    await this.deps.db.transaction().execute(async (tx) => {
      await tx
        .updateTable("cluster_nodes")
        .set({ status: ok ? "exited" : "failed", exit_code: message.exitCode, ended_at: now })
        .where("cluster_id", "=", message.clusterId)
        .where("rank", "=", message.rank)
        .where("active", "=", 1)
        .execute();
      await appendClusterEvent(tx, message.clusterId, now, "rank-exited", {
        rank: message.rank,
        attempt: message.attempt,
        exitCode: message.exitCode,
        signal: message.signal,
        ...(message.error === null ? {} : { error: message.error }),
        ...(message.limitExceeded === undefined ? {} : { limitExceeded: message.limitExceeded }),
        cause: rankEndCause(end),
        end,
      });
    });
    await this.judgeExit(message.clusterId, message.rank, ok);
  }

  /** Ends the cluster if a rank's recorded exit ends it (idempotent: an ended one stays). */
  private async judgeExit(clusterId: string, rank: number, ok: boolean): Promise<void> {
    const cluster = await loadCluster(this.deps.db, clusterId);
    if (isFinal(cluster.status)) return;
    const verdict = endVerdict(cluster, rank, ok);
    if (verdict !== undefined) await this.finish(cluster.id, verdict.status, verdict.reason);
  }

  /**
   * Ends clusters whose paid time is over, moves lapsed reservations, then settles every running
   * cluster in one pass (one DB transaction, one settlement statement set for all their leases:
   * billing's `settleLeases`), then lets autoscaled clusters take their next step.
   */
  async tick(): Promise<void> {
    const now = this.deps.clock.now();
    const live = await this.deps.db
      .selectFrom("clusters")
      .select(["id", "status", "ends_at", "autoscale"])
      .where("status", "in", ["provisioning", "running"])
      .execute();
    // One read finds every lapsed reservation; only clusters with something to do are visited.
    const lapsedIn = new Set(
      (
        await this.lapsedReservations(this.deps.db, now).select("cluster_id").distinct().execute()
      ).map((r) => r.cluster_id),
    );
    const expired = new Set<string>();
    for (const row of live) {
      if (row.status === "running" && row.ends_at !== null && Number(row.ends_at) <= now)
        expired.add(row.id);
      if (!expired.has(row.id) && !lapsedIn.has(row.id)) continue;
      await this.serial(row.id, async () => {
        if (expired.has(row.id)) return this.finish(row.id, "expired", "paid time is over");
        const cluster = await loadCluster(this.deps.db, row.id);
        if (await secretsPending(this.deps.db, cluster))
          return this.finish(
            row.id,
            "failed",
            `secrets not sent within ${this.options.reservationTtlMs} ms of the deploy`,
          );
        const lapsed = await this.lapsedReservations(this.deps.db, now)
          .select(["seq", "node_id", "rank"])
          .where("cluster_id", "=", row.id)
          .execute();
        for (const lease of lapsed)
          await this.failover.failLease(row.id, lease.seq, {
            end: "never-accepted",
            reason: `node ${lease.node_id} did not accept rank ${lease.rank} within ${this.options.reservationTtlMs} ms`,
          });
      });
    }
    const running = live.filter((row) => row.status === "running" && !expired.has(row.id));
    await this.settleRunning(
      running.map((row) => row.id),
      now,
    );
    for (const row of running)
      if (row.autoscale !== null) await this.serial(row.id, () => this.autoscaler.step(row.id));
  }

  /** Reservations whose worker did not accept in time (a query to select from). */
  private lapsedReservations(db: Kysely<Database>, now: number) {
    return db
      .selectFrom("cluster_nodes")
      .where("active", "=", 1)
      .where("status", "=", "reserved")
      .where("reserved_until", "<", now);
  }

  /**
   * One settlement pass over the leases of every cluster among `clusterIds` still running, holding
   * all their queues. Each lease is paid up to its worker's last sign of life, not to now: a node
   * that died unnoticed (or while the coordinator was down) is not paid until its loss is detected.
   */
  private async settleRunning(clusterIds: readonly string[], now: number): Promise<void> {
    if (clusterIds.length === 0) return;
    const wanted = new Set(clusterIds);
    // Ticks come every second; a lease earns once a minute. Only leases whose served minutes
    // moved since the last tick settled them are passed (a restart passes all once: replays).
    const settled = new Map<string, number>();
    await this.serialAll(clusterIds, () =>
      this.deps.db.transaction().execute(async (tx) => {
        const leases: LeaseSettlement[] = [];
        for (const cluster of await loadClustersIn(tx, "running")) {
          if (!wanted.has(cluster.id)) continue; // started since the tick began: the next one
          for (const lease of cluster.nodes.filter((n) => n.active)) {
            const served = this.deps.workers.servedUntilMs(lease.nodeId);
            if (served === undefined) continue;
            const settlement = settlementOf(cluster, lease, Math.min(now, served));
            settled.set(settlement.leaseId, settlement.servedMinutes);
            if (this.settledMinutes.get(settlement.leaseId) !== settlement.servedMinutes)
              leases.push(settlement);
          }
        }
        // A lease its escrow cannot pay (a broken invariant) is reported; the others are paid.
        const unpaid = leases.length === 0 ? [] : await this.deps.payments.settle(tx, leases);
        for (const lease of unpaid) {
          settled.delete(lease.leaseId);
          this.logError(unpaidError(lease), "settlement");
        }
      }),
    );
    this.settledMinutes = settled; // committed; leases that ended drop out
  }

  private async settleLease(
    tx: Kysely<Database>,
    cluster: LoadedCluster,
    lease: LoadedLease,
    nowMs: number,
  ): Promise<void> {
    const [unpaid] = await this.deps.payments.settle(tx, [settlementOf(cluster, lease, nowMs)]);
    // Escrow always holds what the quote said: a lease it cannot pay must not be closed.
    if (unpaid !== undefined) throw unpaidError(unpaid);
  }

  /** Settles a lease up to `billedUntil` and closes it. */
  private async endLease(
    tx: Kysely<Database>,
    cluster: LoadedCluster,
    lease: LoadedLease,
    end: {
      status: LeaseEnd;
      billedUntil: number;
      reason: string;
      nowMs: number;
    },
  ): Promise<void> {
    // However it ends, a lease is paid no further than its worker was heard serving.
    const billedUntil = Math.min(
      end.billedUntil,
      this.deps.workers.servedUntilMs(lease.nodeId) ?? end.billedUntil,
    );
    await this.settleLease(tx, cluster, { ...lease, billedUntilMs: billedUntil }, end.nowMs);
    await tx
      .updateTable("cluster_nodes")
      .set({
        active: 0,
        status: end.status,
        reserved_until: null,
        billed_until: billedUntil,
        ended_at: end.nowMs,
        end_reason: end.reason,
      })
      .where("cluster_id", "=", cluster.id)
      .where("seq", "=", lease.seq)
      .where("active", "=", 1)
      .execute();
  }

  /** The one end path: final status, served minutes paid, the rest refunded, every node released. */
  async finish(
    clusterId: string,
    status: Extract<ClusterStatus, "completed" | "failed" | "terminated" | "expired">,
    reason: string,
  ): Promise<void> {
    const now = this.deps.clock.now();
    const released: Array<{ nodeId: string; from: NodeStatus }> = [];
    const stopped = await this.deps.db.transaction().execute(async (tx) => {
      const cluster = await loadCluster(tx, clusterId);
      if (isFinal(cluster.status)) return undefined;
      const active = cluster.nodes.filter((n) => n.active);
      for (const lease of active) await this.settleLease(tx, cluster, lease, now);
      await this.deps.payments.refundRemainder(tx, {
        clusterId,
        consumerAccountId: cluster.accountId,
        currency: cluster.currency,
        nowMs: now,
      });
      await tx
        .updateTable("clusters")
        .set({ status, ended_at: now })
        .where("id", "=", clusterId)
        .execute();
      if (cluster.autoscale !== null) await this.autoscaler.cancelRemaining(tx, clusterId, now);
      await this.overlays.forget(tx, clusterId);
      for (const lease of active) {
        const stillServing =
          lease.status === "reserved" || lease.status === "running" || lease.status === "staged";
        await tx
          .updateTable("cluster_nodes")
          .set({
            active: 0,
            ...(stillServing ? { status: "released" } : {}),
            ...(lease.status === "exited" || lease.status === "failed" ? {} : { ended_at: now }),
          })
          .where("cluster_id", "=", clusterId)
          .where("seq", "=", lease.seq)
          .execute();
        await appendLeaseOutcome(tx, {
          nodeId: lease.nodeId,
          atMs: now,
          clusterId,
          seq: lease.seq,
          outcome: "completed",
          cause: "consumer",
          end: "cluster-ended",
          reason: `cluster ${status}: ${reason}`,
          slashed: null,
          currency: cluster.currency,
        });
        const result = await applyInTx(
          tx,
          lease.nodeId,
          { type: "release" },
          { actor: "scheduler", reason: `released by ${clusterId}`, nowMs: now },
        );
        if (result.ok) released.push({ nodeId: lease.nodeId, from: result.from });
      }
      await appendClusterEvent(tx, clusterId, now, status, { reason });
      await forgetClusterTls(tx, clusterId);
      const reputations = await storeReputations(
        tx,
        [...new Set(active.map((n) => n.nodeId))],
        now,
      );
      return { active, reputations };
    });
    if (stopped === undefined) return;
    announceReputations(this.deps.events, stopped.reputations, now);
    this.heads.delete(clusterId);
    this.logs.forget(clusterId);
    this.failover.forget(clusterId);
    for (const lease of stopped.active)
      this.deps.workers.send(lease.nodeId, { type: "job-stop", clusterId, reason });
    for (const { nodeId, from } of released)
      this.deps.events.emit("node:status", {
        nodeId,
        from,
        to: "available",
        atMs: now,
        reason: `released by ${clusterId}`,
      });
    for (const lease of stopped.active) await this.failover.answerDrained(lease.nodeId);
    this.deps.logger.info({ clusterId, status, reason }, "cluster ended");
  }

  /** Runs `work` after every earlier piece of work on the same cluster has finished. */
  private serial<T>(clusterId: string, work: () => Promise<T>): Promise<T> {
    const previous = this.queues.get(clusterId) ?? Promise.resolve();
    const next = previous.then(work, work);
    const settled = next.catch(() => undefined);
    this.queues.set(clusterId, settled);
    void settled.then(() => {
      if (this.queues.get(clusterId) === settled) this.queues.delete(clusterId);
    });
    return next;
  }

  /**
   * Runs `work` once while holding the queue of every cluster in `clusterIds`, as `serial` holds
   * one: it starts when each queue has reached it, and work queued behind it waits until it ends.
   */
  private serialAll<T>(clusterIds: readonly string[], work: () => Promise<T>): Promise<T> {
    let release!: () => void;
    const held = new Promise<void>((resolve) => (release = resolve));
    const reached = clusterIds.map(
      (id) =>
        new Promise<void>((arrive) => {
          void this.serial(id, () => {
            arrive();
            return held;
          });
        }),
    );
    return Promise.all(reached)
      .then(work)
      .finally(() => release());
  }

  /**
   * A fresh node with the cluster's filters at no more than `ceilingPerHour`, claimed. In place of
   * `replacing`'s rank, it must join the cluster's overlay as the others did, and is behind NAT only
   * when no other active node of the cluster is.
   */
  private placeFresh(
    cluster: LoadedCluster,
    ceilingPerHour: bigint,
    quiet: boolean,
    replacing?: string,
  ): PlacedNode | undefined {
    const rate = this.rate(cluster.currency);
    const filters = cluster.spec.filters as CapacityFilters;
    const ceiling = toUsd(ceilingPerHour, rate);
    const request = this.placementRequest(
      {
        ...filters,
        nodes: 1,
        shadow: 0,
        autoscale: undefined,
        currency: cluster.currency,
        kind: cluster.kind,
      },
      rate,
      // Never a node that already served this cluster: a node back from the dead gets no rank back.
      new Set(cluster.nodes.map((n) => n.nodeId)),
    );
    const others = cluster.nodes.filter((n) => n.active && n.nodeId !== replacing);
    const placed = place(this.deps.inventory, {
      ...request,
      network: networkAsk(
        { ...filters, nodes: rankCount(cluster), autoscale: cluster.autoscale },
        this.options.jobNetworks ?? "optional",
      ),
      maxBehindNat: others.some((n) => this.deps.workers.behindNat(n.nodeId)) ? 0 : 1,
      // One node spreads nowhere, and is never paid more than the cluster was charged for.
      spreadZones: false,
      maxPricePerHour:
        request.maxPricePerHour === undefined || request.maxPricePerHour > ceiling
          ? ceiling
          : request.maxPricePerHour,
    });
    if (!placed.ok) {
      if (!quiet)
        this.deps.logger.warn(
          { clusterId: cluster.id, explanation: placed.explanation },
          "no replacement node",
        );
      return undefined;
    }
    const node = placed.nodes[0]!;
    this.deps.inventory.markTaken([node.nodeId]);
    return {
      nodeId: node.nodeId,
      accountId: node.accountId,
      region: node.region,
      zone: node.zone,
      price: toCurrency(node.pricePerHour, rate),
    };
  }

  private placementRequest(
    request: Search,
    rate: bigint,
    exclude: ReadonlySet<string>,
  ): PlacementRequest {
    return {
      nodes: request.nodes + (request.shadow ?? 0),
      gpuModel: request.gpuModel,
      gpusPerNode: request.gpusPerNode,
      minVramMiB: request.minVramMiB,
      regions: request.regions,
      spreadZones: request.spreadZones,
      minUptime: request.minUptime,
      minReputation: request.minReputation,
      teeCapable: request.teeCapable,
      containers: request.kind === "container" ? true : undefined,
      limits: request.limits,
      network: networkAsk(request, this.options.jobNetworks ?? "optional"),
      maxPricePerHour:
        request.maxPricePerHour === undefined
          ? undefined
          : toUsd(parseMoneyOrThrow(request.maxPricePerHour, { field: "maxPricePerHour" }), rate),
      exclude,
    };
  }

  private rate(currency: string): bigint {
    const rate = this.options.unitsPerUsd[currency];
    if (rate === undefined)
      throw new TandemError(ErrorCode.VALIDATION_FAILED, `no price oracle rate for ${currency}`);
    return rate;
  }

  private logError(error: unknown, what: string): void {
    this.deps.logger.error({ err: error }, `scheduler ${what} failed`);
  }
}

/**
 * Whether a worker's exit says the job went past one of its limits (a field of `job-exit` that
 * workers add with per-rank limits, issue 18; read defensively so older messages still parse).
 */
class ReservationConflict extends Error {
  constructor(readonly nodeIds: string[]) {
    super("nodes were taken concurrently");
  }
}

/** How a cluster ends when one of its ranks exits, or undefined while it goes on. */
function endVerdict(
  cluster: LoadedCluster,
  rank: number,
  ok: boolean,
): { status: "completed" | "failed"; reason: string } | undefined {
  const serviceKinds = cluster.kind === "dask" || cluster.kind === "ray";
  if (serviceKinds) {
    if (rank === 0)
      return ok
        ? { status: "completed", reason: "the command finished" }
        : { status: "failed", reason: "the command failed on the head" };
    return { status: "failed", reason: `rank ${rank} stopped` };
  }
  if (!ok) return { status: "failed", reason: `rank ${rank} failed` };
  const stillRunning = cluster.nodes.some(
    (n) => n.active && n.rank !== null && (n.status === "reserved" || n.status === "running"),
  );
  return stillRunning ? undefined : { status: "completed", reason: "every rank finished" };
}

/**
 * What an autoscaled cluster prepays beyond its first nodes: up to `max` nodes, each slot at the
 * dearest placed node's price, so growth is always paid for (unused node-time is refunded).
 */
function growthSlots(
  request: { nodes: number; autoscale?: Autoscale | undefined },
  placed: ReadonlyArray<{ pricePerHour: bigint }>,
): Array<{ nodeId: string; pricePerHour: bigint; standby: false }> {
  if (request.autoscale === undefined) return [];
  const price = placed.reduce((m, n) => (n.pricePerHour > m ? n.pricePerHour : m), 0n);
  return Array.from({ length: request.autoscale.max - request.nodes }, (_, i) => ({
    nodeId: `growth-${i + 1}`,
    pricePerHour: price,
    standby: false as const,
  }));
}

/** Bounds zod cannot check alone: autoscaling is for `batch`, without standbys, nodes in bounds. */
export function checkAutoscale(request: {
  kind?: string;
  nodes: number;
  shadow?: number | undefined;
  autoscale?: Autoscale | undefined;
}): void {
  const bounds = request.autoscale;
  if (bounds === undefined) return;
  const problem =
    request.kind !== undefined && request.kind !== "batch"
      ? "autoscaling is for batch clusters"
      : (request.shadow ?? 0) > 0
        ? "an autoscaled cluster keeps no standbys (it grows instead)"
        : bounds.min > bounds.max
          ? `autoscale min ${bounds.min} is above max ${bounds.max}`
          : request.nodes < bounds.min || request.nodes > bounds.max
            ? `nodes ${request.nodes} is outside autoscale ${bounds.min}..${bounds.max}`
            : undefined;
  if (problem !== undefined)
    throw new TandemError(ErrorCode.VALIDATION_FAILED, problem, { details: { autoscale: bounds } });
}

/** Secret names are for fixed-size clusters, and never the name of a plain `--env` value. */
function checkSecretNames(request: Deploy): void {
  const names = request.secretNames;
  if (names === undefined) return;
  const clash = names.filter((name) => request.env?.[name] !== undefined);
  const problem =
    request.autoscale !== undefined
      ? "an autoscaled cluster cannot take sealed secrets yet (its new nodes would need them)"
      : clash.length > 0
        ? `${clash.join(", ")} is both a secret and an --env value`
        : undefined;
  if (problem !== undefined)
    throw new TandemError(ErrorCode.VALIDATION_FAILED, problem, {
      details: { field: "secretNames" },
    });
}

function filtersOf(request: Deploy): Record<string, unknown> {
  const filters: Record<string, unknown> = { ...request };
  for (const key of ["kind", "hours", "command", "env", "image", "autoscale", "secretNames"])
    delete filters[key];
  return filters;
}

function isUniqueViolation(error: unknown): boolean {
  const code = (error as { code?: unknown }).code;
  return (
    code === "23505" ||
    code === "SQLITE_CONSTRAINT_UNIQUE" ||
    code === "SQLITE_CONSTRAINT_PRIMARYKEY"
  );
}

/** What a lease has earned by `nowMs`, as the payments port settles it. */
function settlementOf(cluster: LoadedCluster, lease: LoadedLease, nowMs: number): LeaseSettlement {
  return {
    clusterId: cluster.id,
    leaseId: leaseId(cluster.id, lease.seq),
    supplierAccountId: lease.supplierAccountId,
    currency: cluster.currency,
    pricePerHour: lease.pricePerHour,
    servedMinutes: leaseServedMinutes({
      clusterStartedAtMs: cluster.startedAtMs,
      clusterEndsAtMs: cluster.endsAtMs,
      leaseStartedAtMs: lease.startedAtMs,
      billedUntilMs: lease.billedUntilMs,
      nowMs,
    }),
    nowMs,
  };
}

function unpaidError(lease: UnpaidLease): TandemError {
  return new TandemError(
    ErrorCode.INTERNAL,
    `escrow of ${lease.clusterId} cannot pay lease ${lease.leaseId}`,
    { details: lease.details },
  );
}
