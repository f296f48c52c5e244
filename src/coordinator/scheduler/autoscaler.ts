import type { FastifyBaseLogger } from "fastify";
import type { Kysely } from "kysely";
import type { Clock } from "../../core/clock.ts";
import { isFinal } from "../../core/cluster-status.ts";
import { ErrorCode, TandemError } from "../../core/errors.ts";
import type { NodeStatus } from "../../core/node-status.ts";
import type { CoordinatorEvents } from "../events.ts";
import { applyInTx } from "../registry/node-lifecycle.ts";
import type { Database } from "../store/schema.ts";
import {
  appendClusterEvent,
  loadCluster,
  type LoadedCluster,
  type LoadedLease,
} from "./cluster-store.ts";
import { jobNetworkSpec } from "./cluster-network.ts";
import type { ClusterRunner } from "./failover.ts";
import { leaseRow, startMessage, type PlacedNode } from "./leases.ts";
import type { ClusterPayments } from "./payments.ts";
import type { WorkerChannel } from "./worker-channel.ts";

/** Most tasks waiting in one cluster's queue; a submit beyond it is refused. */
export const MAX_QUEUED_TASKS = 10_000;

/** What the autoscaler needs from the scheduler that owns the clusters. */
export interface ScalingRunner {
  /** Pays a lease its served minutes so far (in the caller's transaction). */
  settleLease(
    tx: Kysely<Database>,
    cluster: LoadedCluster,
    lease: LoadedLease,
    nowMs: number,
  ): Promise<void>;
  endLease: ClusterRunner["endLease"];
  /** A fresh node under the cluster's filters at no more than `ceiling` per hour, claimed. */
  placeFresh(cluster: LoadedCluster, ceilingPerHour: bigint): PlacedNode | undefined;
}

/**
 * Autoscaling for `batch` clusters with a task queue (issue 5): a cluster keeps between `min` and
 * `max` nodes, aiming at `tasksPerNode` queued or running tasks per node. It grows while tasks per
 * node exceed the target and the escrow can pay the added node until the cluster's end; it
 * releases a node idle for `idleReleaseMs` when no task waits. Idle nodes take queued tasks in
 * order; each run of a task is one `job-start` whose attempt is the task's number. Every decision
 * is a cluster event with its reason. Callers run `step` inside the cluster's serial queue.
 */
export class Autoscaler {
  constructor(
    private readonly deps: {
      db: Kysely<Database>;
      clock: Clock;
      workers: WorkerChannel;
      payments: ClusterPayments;
      events: CoordinatorEvents;
      logger: FastifyBaseLogger;
    },
    private readonly options: { reservationTtlMs: number; idleReleaseMs: number },
    private readonly runner: ScalingRunner,
  ) {}

  /** Queues a task at the end of the cluster's queue (in the caller's transaction); its number. */
  async submit(tx: Kysely<Database>, clusterId: string, command: string[]): Promise<number> {
    const last = await tx
      .selectFrom("cluster_tasks")
      .select((eb) => eb.fn.max("seq").as("seq"))
      .where("cluster_id", "=", clusterId)
      .executeTakeFirst();
    const waiting = await tx
      .selectFrom("cluster_tasks")
      .select((eb) => eb.fn.countAll<number | string>().as("n"))
      .where("cluster_id", "=", clusterId)
      .where("status", "=", "queued")
      .executeTakeFirstOrThrow();
    if (Number(waiting.n) >= MAX_QUEUED_TASKS)
      throw new TandemError(
        ErrorCode.CONFLICT,
        `cluster ${clusterId} already has ${MAX_QUEUED_TASKS} queued tasks`,
      );
    const seq = Number(last?.seq ?? 0) + 1;
    await tx
      .insertInto("cluster_tasks")
      .values({
        cluster_id: clusterId,
        seq,
        command: JSON.stringify(command),
        status: "queued",
        lease_seq: null,
        node_id: null,
        exit_code: null,
        submitted_at: this.deps.clock.now(),
        started_at: null,
        ended_at: null,
      })
      .execute();
    return seq;
  }

  /** One round: grow or shrink towards the queue's need, then give queued tasks to idle nodes. */
  async step(clusterId: string): Promise<void> {
    const now = this.deps.clock.now();
    const sends: Array<{ nodeId: string; message: Parameters<WorkerChannel["send"]>[1] }> = [];
    const statuses: Array<{ nodeId: string; from: NodeStatus; to: NodeStatus; reason: string }> =
      [];
    await this.deps.db.transaction().execute(async (tx) => {
      const cluster = await loadCluster(tx, clusterId);
      const bounds = cluster.autoscale;
      if (bounds === null || isFinal(cluster.status) || cluster.endsAtMs === null) return;
      const tasks = await tx
        .selectFrom("cluster_tasks")
        .select(["seq", "status", "command"])
        .where("cluster_id", "=", clusterId)
        .where("status", "in", ["queued", "running"])
        .orderBy("seq")
        .execute();
      const queued = tasks.filter((t) => t.status === "queued");
      const running = tasks.length - queued.length;
      let leases = cluster.nodes.filter((n) => n.active && n.rank !== null);
      const desired = Math.min(
        bounds.max,
        Math.max(bounds.min, Math.ceil(tasks.length / bounds.tasksPerNode)),
      );
      const why = `${queued.length} queued + ${running} running tasks at ${bounds.tasksPerNode} per node`;

      if (desired > leases.length) {
        const added = await this.grow(tx, cluster, desired - leases.length, now, statuses);
        if (added.length > 0) {
          await appendClusterEvent(tx, clusterId, now, "scaled-up", {
            from: leases.length,
            to: leases.length + added.length,
            nodes: added.map((n) => n.nodeId),
            reason:
              leases.length < bounds.min
                ? `below the minimum of ${bounds.min}`
                : `${why} → ${desired} nodes`,
          });
          leases = (await loadCluster(tx, clusterId)).nodes.filter(
            (n) => n.active && n.rank !== null,
          );
        }
      } else if (queued.length === 0 && leases.length > desired) {
        const idle = leases.filter(
          (n) =>
            n.status === "staged" &&
            n.idleSinceMs !== null &&
            now - n.idleSinceMs >= this.options.idleReleaseMs,
        );
        const released = idle.slice(0, leases.length - desired);
        for (const lease of released) {
          await this.runner.endLease(tx, cluster, lease, {
            status: "released",
            billedUntil: now,
            reason: "scaled down",
            nowMs: now,
          });
          const result = await applyInTx(
            tx,
            lease.nodeId,
            { type: "release" },
            { actor: "scheduler", reason: `scaled down from ${clusterId}`, nowMs: now },
          );
          if (result.ok)
            statuses.push({
              nodeId: lease.nodeId,
              from: result.from,
              to: result.to,
              reason: "scaled down",
            });
          sends.push({
            nodeId: lease.nodeId,
            message: { type: "job-stop", clusterId, reason: "scaled down" },
          });
        }
        if (released.length > 0) {
          await appendClusterEvent(tx, clusterId, now, "scaled-down", {
            from: leases.length,
            to: leases.length - released.length,
            nodes: released.map((n) => n.nodeId),
            reason: `no queued task and idle for ${this.options.idleReleaseMs / 1000} s; ${why} → ${desired} nodes`,
          });
          const gone = new Set(released.map((n) => n.seq));
          leases = leases.filter((n) => !gone.has(n.seq));
        }
      }

      // Idle nodes take queued tasks, oldest first.
      const idle = leases.filter((n) => n.status === "staged");
      for (const [i, task] of queued.slice(0, idle.length).entries()) {
        const lease = idle[i]!;
        await tx
          .updateTable("cluster_tasks")
          .set({ status: "running", lease_seq: lease.seq, node_id: lease.nodeId, started_at: now })
          .where("cluster_id", "=", clusterId)
          .where("seq", "=", task.seq)
          .execute();
        await tx
          .updateTable("cluster_nodes")
          .set({
            status: "reserved",
            attempt: task.seq,
            reserved_until: now + this.options.reservationTtlMs,
            idle_since: null,
          })
          .where("cluster_id", "=", clusterId)
          .where("seq", "=", lease.seq)
          .execute();
        const spec = {
          kind: cluster.kind,
          command: JSON.parse(task.command) as string[],
          env: cluster.spec.env,
          image: cluster.spec.image,
          limits: cluster.spec.limits,
          network: jobNetworkSpec(cluster.spec, leases.length, true),
        };
        sends.push({
          nodeId: lease.nodeId,
          message: startMessage(clusterId, spec, lease.rank!, task.seq, leases.length, null),
        });
      }
    });
    for (const status of statuses) this.deps.events.emit("node:status", { ...status, atMs: now });
    for (const { nodeId, message } of sends) this.deps.workers.send(nodeId, message);
  }

  /** Adds up to `count` nodes the escrow can pay until the cluster's end; answers those added. */
  private async grow(
    tx: Kysely<Database>,
    cluster: LoadedCluster,
    count: number,
    now: number,
    statuses: Array<{ nodeId: string; from: NodeStatus; to: NodeStatus; reason: string }>,
  ): Promise<PlacedNode[]> {
    const active = cluster.nodes.filter((n) => n.active);
    // Settle to now, so the escrow holds exactly what is still owed plus what is free.
    for (const lease of active) await this.runner.settleLease(tx, cluster, lease, now);
    // Whole minutes a lease can still be paid is at most this (its minutes are rounded down).
    const minutesLeft = Math.ceil((cluster.endsAtMs! - now) / 60_000);
    const owed = (price: bigint) => (price * BigInt(minutesLeft) + 59n) / 60n;
    let free = await this.deps.payments.escrowBalance(tx, cluster.id, cluster.currency);
    for (const lease of active) free -= owed(lease.pricePerHour);
    // New nodes cost no more per hour than the dearest node the cluster was charged for.
    const ceiling = cluster.nodes.reduce((m, n) => (n.pricePerHour > m ? n.pricePerHour : m), 0n);
    const added: PlacedNode[] = [];
    let rank = Math.max(...cluster.nodes.map((n) => n.rank ?? -1)) + 1;
    let seq = Math.max(...cluster.nodes.map((n) => n.seq)) + 1;
    for (let i = 0; i < count; i++) {
      if (free < owed(ceiling)) break;
      const node = this.runner.placeFresh(cluster, ceiling);
      if (node === undefined) break;
      const leased = await applyInTx(
        tx,
        node.nodeId,
        { type: "lease" },
        { actor: "scheduler", reason: `scaled up ${cluster.id}`, nowMs: now },
      );
      if (!leased.ok) break;
      statuses.push({ nodeId: node.nodeId, from: leased.from, to: leased.to, reason: "scaled up" });
      await tx
        .insertInto("cluster_nodes")
        .values({
          ...leaseRow(cluster.id, seq++, node, node.price),
          rank: rank++,
          role: "worker",
          status: "staged",
          reserved_until: null,
          started_at: now,
          idle_since: now,
        })
        .execute();
      free -= owed(node.price);
      added.push(node);
    }
    return added;
  }

  /** The start of the task a reserved lease was given, to send again after a reconnect. */
  async taskStart(cluster: LoadedCluster, lease: LoadedLease) {
    const task = await this.deps.db
      .selectFrom("cluster_tasks")
      .select("command")
      .where("cluster_id", "=", cluster.id)
      .where("seq", "=", lease.attempt)
      .where("status", "=", "running")
      .executeTakeFirst();
    if (task === undefined || lease.rank === null) return undefined;
    const spec = {
      kind: cluster.kind,
      command: JSON.parse(task.command) as string[],
      env: cluster.spec.env,
      image: cluster.spec.image,
      limits: cluster.spec.limits,
      network: jobNetworkSpec(cluster.spec, 1, true),
    };
    const worldSize = cluster.nodes.filter((n) => n.active && n.rank !== null).length;
    return startMessage(cluster.id, spec, lease.rank, lease.attempt, worldSize, null);
  }

  /** A task's run ended on its node: the task is done (or failed), the node idle again. */
  async onTaskExit(
    tx: Kysely<Database>,
    clusterId: string,
    leaseSeq: number,
    task: number,
    exitCode: number | null,
  ): Promise<void> {
    const now = this.deps.clock.now();
    await tx
      .updateTable("cluster_tasks")
      .set({ status: exitCode === 0 ? "done" : "failed", exit_code: exitCode, ended_at: now })
      .where("cluster_id", "=", clusterId)
      .where("seq", "=", task)
      .where("status", "=", "running")
      .execute();
    await tx
      .updateTable("cluster_nodes")
      .set({ status: "staged", reserved_until: null, idle_since: now })
      .where("cluster_id", "=", clusterId)
      .where("seq", "=", leaseSeq)
      .where("active", "=", 1)
      .execute();
  }

  /** The task a lost lease was running goes back to the queue (another node runs it again). */
  async requeue(tx: Kysely<Database>, clusterId: string, leaseSeq: number): Promise<void> {
    await tx
      .updateTable("cluster_tasks")
      .set({ status: "queued", lease_seq: null, node_id: null, started_at: null })
      .where("cluster_id", "=", clusterId)
      .where("lease_seq", "=", leaseSeq)
      .where("status", "=", "running")
      .execute();
  }

  /** At the cluster's end, whatever did not run is cancelled. */
  async cancelRemaining(tx: Kysely<Database>, clusterId: string, nowMs: number): Promise<void> {
    await tx
      .updateTable("cluster_tasks")
      .set({ status: "cancelled", ended_at: nowMs })
      .where("cluster_id", "=", clusterId)
      .where("status", "in", ["queued", "running"])
      .execute();
  }
}
