import type { FastifyBaseLogger } from "fastify";
import type { Kysely } from "kysely";
import type { z } from "zod";
import type { Clock } from "../../core/clock.ts";
import { isFinal, servedMinutes, type ClusterStatus } from "../../core/cluster-status.ts";
import { ErrorCode, TandemError } from "../../core/errors.ts";
import { parseMoneyOrThrow } from "../../core/money.ts";
import type { NodeStatus } from "../../core/node-status.ts";
import { place, type PlacementRequest } from "../../core/placement.ts";
import type {
  ClusterView,
  DeployRequest,
  SearchRequest,
  SearchResponse,
} from "../../protocol/clusters.ts";
import { IdPrefix, newId } from "../../protocol/ids.ts";
import type {
  JobExitMessage,
  JobLogMessage,
  WorkerMessage,
} from "../../protocol/worker-messages.ts";
import type { CoordinatorEvents } from "../events.ts";
import { applyInTx } from "../registry/node-lifecycle.ts";
import type { Database } from "../store/schema.ts";
import {
  appendClusterEvent,
  clusterView,
  formatUnits,
  loadCluster,
  type LoadedCluster,
} from "./cluster-store.ts";
import type { Inventory } from "./inventory.ts";
import type { ClusterPayments } from "./payments.ts";
import type { WorkerChannel } from "./worker-channel.ts";

type Search = z.output<typeof SearchRequest>;
type Deploy = z.output<typeof DeployRequest>;

export interface SchedulerOptions {
  /** A reserved worker must accept its rank within this, ms, or the reservation lapses. */
  reservationTtlMs: number;
  /** How often served time is settled and expiries are checked, ms. */
  tickMs: number;
  /** Units of each currency per US dollar (6 decimals): the price oracle's rates. */
  unitsPerUsd: Readonly<Record<string, bigint>>;
  /** Most log lines kept per cluster; later lines are dropped (and counted). */
  maxLogLinesPerCluster: number;
}

type JobMessage = Extract<WorkerMessage, { type: "job-accepted" | "job-log" | "job-exit" }>;

/**
 * The scheduler: search, deploy, run, end. A deploy charges escrow and reserves every node in one
 * transaction (the database refuses a second active lease on a node), then starts the head rank;
 * the head reports its rendezvous port and the other ranks start against it. Every end path —
 * completion, failure, termination, expiry, a lapsed reservation, a lost node — goes through
 * `finish`, which settles served minutes, refunds the rest and releases every node.
 */
export class Scheduler {
  private readonly heads = new Map<string, { address: string; port: number }>();
  private readonly logLines = new Map<string, number>();
  private timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly deps: {
      db: Kysely<Database>;
      clock: Clock;
      inventory: Inventory;
      workers: WorkerChannel;
      payments: ClusterPayments;
      events: CoordinatorEvents;
      logger: FastifyBaseLogger;
    },
    private readonly options: SchedulerOptions,
  ) {
    deps.events.on("node:status", ({ nodeId, to }) => {
      if (to === "offline" || to === "revoked")
        void this.onNodeLost(nodeId, to).catch((error: unknown) =>
          this.logError(error, "node loss"),
        );
    });
  }

  start(): void {
    this.timer = setInterval(
      () => void this.tick().catch((error: unknown) => this.logError(error, "tick")),
      this.options.tickMs,
    );
    this.timer.unref();
  }

  stop(): void {
    clearInterval(this.timer);
  }

  search(request: Search): SearchResponse {
    const rate = this.rate(request.currency);
    const result = place(
      this.deps.inventory,
      this.placementRequest(request, rate, new Set()),
      (usd) => formatUnits(toCurrency(usd, rate)),
    );
    const offers = result.ok ? result.nodes : [];
    return {
      satisfiable: result.ok,
      needed: request.nodes,
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
        ? `${result.matching} matching nodes; ${request.nodes} chosen`
        : result.explanation,
    };
  }

  /** The nodes a deploy would get now, with their prices in the request's currency (for quotes). */
  offerFor(request: Search): Array<{ nodeId: string; pricePerHour: bigint }> {
    const rate = this.rate(request.currency);
    const placed = place(
      this.deps.inventory,
      this.placementRequest(request, rate, new Set()),
      (usd) => formatUnits(toCurrency(usd, rate)),
    );
    if (!placed.ok) {
      throw new TandemError(ErrorCode.NO_CAPACITY, placed.explanation, {
        details: { funnel: placed.funnel, needed: request.nodes },
      });
    }
    return placed.nodes.map((n) => ({
      nodeId: n.nodeId,
      pricePerHour: toCurrency(n.pricePerHour, rate),
    }));
  }

  async deploy(accountId: string, request: Deploy, idempotencyKey?: string): Promise<ClusterView> {
    const key = idempotencyKey === undefined ? undefined : `${accountId}:${idempotencyKey}`;
    if (key !== undefined) {
      const existing = await this.deps.db
        .selectFrom("clusters")
        .select("id")
        .where("idempotency_key", "=", key)
        .executeTakeFirst();
      if (existing !== undefined) return clusterView(this.deps.db, existing.id);
    }
    const rate = this.rate(request.currency);
    const excluded = new Set<string>();
    for (let attempt = 0; attempt < 4; attempt++) {
      const placed = place(
        this.deps.inventory,
        this.placementRequest(request, rate, excluded),
        (usd) => formatUnits(toCurrency(usd, rate)),
      );
      if (!placed.ok) {
        throw new TandemError(ErrorCode.NO_CAPACITY, placed.explanation, {
          details: { funnel: placed.funnel, needed: request.nodes },
        });
      }
      const clusterId = newId(IdPrefix.cluster, this.deps.clock.now());
      const nodes = placed.nodes.map((n, rank) => ({
        ...n,
        rank,
        price: toCurrency(n.pricePerHour, rate),
      }));
      // Claimed in memory before the first await, so concurrent deploys on this coordinator never
      // race for the same nodes; the database's unique active-lease index guards across replicas.
      this.deps.inventory.markTaken(nodes.map((n) => n.nodeId));
      const outcome = await this.reserve(clusterId, accountId, request, nodes, key).catch(
        async (error: unknown) => {
          await Promise.all(nodes.map((n) => this.deps.inventory.refresh(n.nodeId)));
          throw error;
        },
      );
      if (outcome.ok) {
        for (const n of nodes)
          this.deps.events.emit("node:status", {
            nodeId: n.nodeId,
            from: "available",
            to: "leased",
            atMs: this.deps.clock.now(),
            reason: `leased to ${clusterId}`,
          });
        this.startHead(clusterId, request, nodes[0]!.nodeId, nodes.length);
        return clusterView(this.deps.db, clusterId);
      }
      await Promise.all(nodes.map((n) => this.deps.inventory.refresh(n.nodeId)));
      for (const id of outcome.conflicts) excluded.add(id);
    }
    throw new TandemError(
      ErrorCode.NO_CAPACITY,
      "nodes kept being taken by concurrent deploys; try again",
      { details: { needed: request.nodes } },
    );
  }

  /** One transaction: escrow first, then every node, or nothing at all. */
  private async reserve(
    clusterId: string,
    accountId: string,
    request: Deploy,
    nodes: ReadonlyArray<{
      nodeId: string;
      accountId: string;
      rank: number;
      region: string;
      zone: string;
      price: bigint;
    }>,
    idempotencyKey: string | undefined,
  ): Promise<{ ok: true } | { ok: false; conflicts: string[] }> {
    const now = this.deps.clock.now();
    try {
      await this.deps.db.transaction().execute(async (tx) => {
        await tx
          .insertInto("clusters")
          .values({
            id: clusterId,
            account_id: accountId,
            kind: request.kind,
            status: "provisioning",
            spec: JSON.stringify({
              command: request.command,
              env: request.env ?? {},
              image: request.image ?? null,
              filters: filtersOf(request),
            }),
            node_count: request.nodes,
            hours: request.hours,
            currency: request.currency,
            idempotency_key: idempotencyKey ?? null,
            created_at: now,
            started_at: null,
            ends_at: null,
            ended_at: null,
          })
          .execute();
        const charged = await this.deps.payments.charge(tx, {
          clusterId,
          consumerAccountId: accountId,
          currency: request.currency,
          nodes: nodes.map((n) => ({ nodeId: n.nodeId, pricePerHour: n.price })),
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
        for (const node of nodes) {
          const leased = await applyInTx(
            tx,
            node.nodeId,
            { type: "lease" },
            { actor: "scheduler", reason: `leased to ${clusterId}`, nowMs: now },
          );
          if (!leased.ok) conflicts.push(node.nodeId);
        }
        if (conflicts.length > 0) throw new ReservationConflict(conflicts);
        await tx
          .insertInto("cluster_nodes")
          .values(
            nodes.map((n) => ({
              cluster_id: clusterId,
              node_id: n.nodeId,
              supplier_account_id: n.accountId,
              rank: n.rank,
              role: n.rank === 0 ? "head" : "worker",
              region: n.region,
              zone: n.zone,
              status: "reserved",
              reserved_until: now + this.options.reservationTtlMs,
              active: 1,
              price_per_hour: Number(n.price),
              exit_code: null,
              started_at: null,
              ended_at: null,
            })),
          )
          .execute();
        await appendClusterEvent(tx, clusterId, now, "reserved", {
          nodes: nodes.map((n) => ({ rank: n.rank, nodeId: n.nodeId, zone: n.zone })),
          reservationTtlMs: this.options.reservationTtlMs,
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

  /** Which of `nodeIds` hold an active lease now (after a unique-index refusal). */
  private async takenAmong(nodeIds: string[]): Promise<string[]> {
    const rows = await this.deps.db
      .selectFrom("cluster_nodes")
      .select("node_id")
      .where("node_id", "in", nodeIds)
      .where("active", "=", 1)
      .execute();
    return rows.map((r) => r.node_id);
  }

  private startHead(
    clusterId: string,
    request: {
      kind: ClusterView["kind"];
      command: string[];
      env?: Record<string, string> | undefined;
      image?: string | undefined;
    },
    headNodeId: string,
    worldSize: number,
  ): void {
    this.deps.workers.send(headNodeId, {
      type: "job-start",
      clusterId,
      rank: 0,
      worldSize,
      kind: request.kind,
      command: request.command,
      env: request.env ?? {},
      image: request.image ?? null,
      head: null,
    });
  }

  async terminate(
    clusterId: string,
    actor: { accountId: string; admin: boolean },
  ): Promise<ClusterView> {
    const cluster = await loadCluster(this.deps.db, clusterId);
    if (!actor.admin && cluster.accountId !== actor.accountId)
      throw new TandemError(ErrorCode.NOT_FOUND, `no cluster ${clusterId}`);
    if (!isFinal(cluster.status))
      await this.finish(clusterId, "terminated", `terminated by account:${actor.accountId}`);
    return clusterView(this.deps.db, clusterId);
  }

  async extend(clusterId: string, accountId: string, hours: number): Promise<ClusterView> {
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
        idempotencyKey: `extend:${clusterId}:${cluster.hours}+${hours}`,
        nowMs: now,
      });
      if (!charged.ok)
        throw new TandemError(ErrorCode.INSUFFICIENT_FUNDS, "not enough funds to extend", {
          details: charged.details,
        });
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
    return clusterView(this.deps.db, clusterId);
  }

  /** Messages from the worker that serves `nodeId` about one of its ranks. */
  async onJobMessage(nodeId: string, message: JobMessage): Promise<void> {
    const lease = await this.deps.db
      .selectFrom("cluster_nodes")
      .select(["rank", "active", "status"])
      .where("cluster_id", "=", message.clusterId)
      .where("node_id", "=", nodeId)
      .where("rank", "=", message.rank)
      .executeTakeFirst();
    if (lease?.active !== 1) return; // not this node's rank (or already released): ignore
    switch (message.type) {
      case "job-accepted":
        return this.onAccepted(nodeId, message.clusterId, message.rank, message.port);
      case "job-log":
        return this.onLog(message);
      case "job-exit":
        return this.onExit(message);
      default:
        message satisfies never;
    }
  }

  private async onAccepted(
    nodeId: string,
    clusterId: string,
    rank: number,
    port: number | null,
  ): Promise<void> {
    const now = this.deps.clock.now();
    const cluster = await loadCluster(this.deps.db, clusterId);
    if (cluster.status !== "provisioning") return;
    if (rank === 0) {
      const address = this.deps.workers.addressOf(nodeId);
      if (port === null || address === undefined)
        return this.finish(clusterId, "failed", "the head did not report a rendezvous address");
      const head = { address, port };
      this.heads.set(clusterId, head);
      await appendClusterEvent(this.deps.db, clusterId, now, "head-ready", {
        nodeId,
        address,
        port,
      });
      for (const node of cluster.nodes.filter((n) => n.rank > 0)) {
        this.deps.workers.send(node.nodeId, {
          type: "job-start",
          clusterId,
          rank: node.rank,
          worldSize: cluster.nodes.length,
          kind: cluster.kind,
          command: cluster.spec.command,
          env: cluster.spec.env,
          image: cluster.spec.image,
          head,
        });
      }
    }
    await this.deps.db.transaction().execute(async (tx) => {
      await tx
        .updateTable("cluster_nodes")
        .set({ status: "running", reserved_until: null, started_at: now })
        .where("cluster_id", "=", clusterId)
        .where("rank", "=", rank)
        .execute();
      const waiting = await tx
        .selectFrom("cluster_nodes")
        .select("rank")
        .where("cluster_id", "=", clusterId)
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

  private async onLog(message: z.infer<typeof JobLogMessage>): Promise<void> {
    const kept = this.logLines.get(message.clusterId) ?? 0;
    const room = this.options.maxLogLinesPerCluster - kept;
    if (room <= 0) return;
    const lines = message.lines.slice(0, room);
    this.logLines.set(message.clusterId, kept + lines.length);
    const at = this.deps.clock.now();
    await this.deps.db
      .insertInto("cluster_logs")
      .values(
        lines.map((text) => ({
          cluster_id: message.clusterId,
          rank: message.rank,
          stream: message.stream,
          at,
          text,
        })),
      )
      .execute();
  }

  private async onExit(message: z.infer<typeof JobExitMessage>): Promise<void> {
    const now = this.deps.clock.now();
    const ok = message.exitCode === 0;
    await this.deps.db
      .updateTable("cluster_nodes")
      .set({ status: ok ? "exited" : "failed", exit_code: message.exitCode, ended_at: now })
      .where("cluster_id", "=", message.clusterId)
      .where("rank", "=", message.rank)
      .execute();
    await appendClusterEvent(this.deps.db, message.clusterId, now, "rank-exited", {
      rank: message.rank,
      exitCode: message.exitCode,
      signal: message.signal,
      ...(message.error === null ? {} : { error: message.error }),
    });
    const cluster = await loadCluster(this.deps.db, message.clusterId);
    if (isFinal(cluster.status)) return;
    const verdict = endVerdict(cluster, message.rank, ok);
    if (verdict !== undefined) await this.finish(cluster.id, verdict.status, verdict.reason);
  }

  private async onNodeLost(nodeId: string, to: NodeStatus): Promise<void> {
    const leases = await this.deps.db
      .selectFrom("cluster_nodes")
      .select(["cluster_id", "rank"])
      .where("node_id", "=", nodeId)
      .where("active", "=", 1)
      .execute();
    for (const lease of leases)
      await this.finish(
        lease.cluster_id,
        "failed",
        `node ${nodeId} (rank ${lease.rank}) went ${to}`,
      );
  }

  /** Settles running clusters and ends those whose paid time is over or whose reservation lapsed. */
  async tick(): Promise<void> {
    const now = this.deps.clock.now();
    const live = await this.deps.db
      .selectFrom("clusters")
      .select(["id", "status", "ends_at"])
      .where("status", "in", ["provisioning", "running"])
      .execute();
    for (const row of live) {
      if (row.status === "running" && row.ends_at !== null && Number(row.ends_at) <= now) {
        await this.finish(row.id, "expired", "paid time is over");
        continue;
      }
      if (row.status === "provisioning") {
        const lapsed = await this.deps.db
          .selectFrom("cluster_nodes")
          .select(["node_id", "rank"])
          .where("cluster_id", "=", row.id)
          .where("status", "=", "reserved")
          .where("reserved_until", "<", now)
          .executeTakeFirst();
        if (lapsed !== undefined) {
          await this.finish(
            row.id,
            "failed",
            `node ${lapsed.node_id} (rank ${lapsed.rank}) did not accept within ${this.options.reservationTtlMs} ms`,
          );
        }
        continue;
      }
      await this.settle(row.id, now);
    }
  }

  private async settle(clusterId: string, now: number): Promise<void> {
    await this.deps.db.transaction().execute(async (tx) => {
      const cluster = await loadCluster(tx, clusterId);
      if (cluster.status !== "running" || cluster.startedAtMs === null) return;
      await this.settleLeases(
        tx,
        cluster,
        servedMinutes(cluster.startedAtMs, now, cluster.hours * 60),
        now,
      );
    });
  }

  private async settleLeases(
    tx: Kysely<Database>,
    cluster: LoadedCluster,
    minutes: number,
    nowMs: number,
  ): Promise<void> {
    for (const node of cluster.nodes) {
      await this.deps.payments.settle(tx, {
        clusterId: cluster.id,
        leaseId: `${cluster.id}/${node.rank}`,
        supplierAccountId: node.supplierAccountId,
        currency: cluster.currency,
        pricePerHour: node.pricePerHour,
        servedMinutes: minutes,
        nowMs,
      });
    }
  }

  /** The one end path: final status, served minutes paid, the rest refunded, every node released. */
  async finish(
    clusterId: string,
    status: Extract<ClusterStatus, "completed" | "failed" | "terminated" | "expired">,
    reason: string,
  ): Promise<void> {
    const now = this.deps.clock.now();
    const released: string[] = [];
    const stopped = await this.deps.db.transaction().execute(async (tx) => {
      const cluster = await loadCluster(tx, clusterId);
      if (isFinal(cluster.status)) return undefined;
      const minutes =
        cluster.startedAtMs === null
          ? 0
          : servedMinutes(cluster.startedAtMs, now, cluster.hours * 60);
      await this.settleLeases(tx, cluster, minutes, now);
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
      for (const node of cluster.nodes.filter((n) => n.active)) {
        await tx
          .updateTable("cluster_nodes")
          .set({
            active: 0,
            ...(node.status === "reserved" || node.status === "running"
              ? { status: "released", ended_at: now }
              : {}),
          })
          .where("cluster_id", "=", clusterId)
          .where("rank", "=", node.rank)
          .execute();
        const result = await applyInTx(
          tx,
          node.nodeId,
          { type: "release" },
          { actor: "scheduler", reason: `released by ${clusterId}`, nowMs: now },
        );
        if (result.ok) released.push(node.nodeId);
      }
      await appendClusterEvent(tx, clusterId, now, status, { reason, servedMinutes: minutes });
      return cluster;
    });
    if (stopped === undefined) return;
    this.heads.delete(clusterId);
    this.logLines.delete(clusterId);
    for (const node of stopped.nodes)
      this.deps.workers.send(node.nodeId, { type: "job-stop", clusterId, reason });
    for (const nodeId of released)
      this.deps.events.emit("node:status", {
        nodeId,
        from: "leased",
        to: "available",
        atMs: now,
        reason: `released by ${clusterId}`,
      });
    this.deps.logger.info({ clusterId, status, reason }, "cluster ended");
  }

  private placementRequest(
    request: Search,
    rate: bigint,
    exclude: ReadonlySet<string>,
  ): PlacementRequest {
    return {
      nodes: request.nodes,
      gpuModel: request.gpuModel,
      gpusPerNode: request.gpusPerNode,
      minVramMiB: request.minVramMiB,
      regions: request.regions,
      spreadZones: request.spreadZones,
      minUptime: request.minUptime,
      teeCapable: request.teeCapable,
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
  const stillRunning = cluster.nodes.some((n) => n.status === "reserved" || n.status === "running");
  return stillRunning ? undefined : { status: "completed", reason: "every rank finished" };
}

function filtersOf(request: Deploy): Record<string, unknown> {
  const filters: Record<string, unknown> = { ...request };
  for (const key of ["kind", "hours", "command", "env", "image"]) delete filters[key];
  return filters;
}

function toCurrency(microUsd: bigint, unitsPerUsd: bigint): bigint {
  return (microUsd * unitsPerUsd) / 1_000_000n;
}

function toUsd(units: bigint, unitsPerUsd: bigint): bigint {
  return (units * 1_000_000n) / unitsPerUsd;
}

function isUniqueViolation(error: unknown): boolean {
  const code = (error as { code?: unknown }).code;
  return (
    code === "23505" ||
    code === "SQLITE_CONSTRAINT_UNIQUE" ||
    code === "SQLITE_CONSTRAINT_PRIMARYKEY"
  );
}
