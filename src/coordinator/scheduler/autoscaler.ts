import { isFinal } from "../../core/cluster-status.ts";
import type { NodeStatus } from "../../core/node-status.ts";
import { applyInTx } from "../registry/node-lifecycle.ts";
import {
  appendClusterEvent,
  loadCluster,
  type LoadedCluster,
  type LoadedLease,
} from "./cluster-store.ts";
import { addLeases, moveLease, type LeaseRef } from "./cluster-lifecycle.ts";
import { leaseRow, type PlacedNode } from "./leases.ts";
import type { Offers } from "./offers.ts";
import type { SchedulerResources } from "./resources.ts";
import type { LeaseSettler } from "./settlement.ts";
import type { WorkerChannel } from "./worker-channel.ts";
import { runInTransaction, type Tx } from "../store/transaction.ts";
import { max, mulDivCeil, sub, ZERO, type Money } from "../../core/money.ts";
import { MAX_TASKS_PER_RUN, type TaskExit } from "../../protocol/worker-messages.ts";
import { shareOut, taskRange, taskRunStart } from "./task-runs.ts";

/** What one round does once its transaction commits. */
interface Round {
  nowMs: number;
  sends: Array<{ nodeId: string; message: Parameters<WorkerChannel["send"]>[1] }>;
  statuses: Array<{ nodeId: string; from: NodeStatus; to: NodeStatus; reason: string }>;
}

/** How many rank nodes the queue asks for, and why (for the scaling events). */
interface Need {
  desired: number;
  min: number;
  why: string;
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
    private readonly resources: Pick<
      SchedulerResources,
      "db" | "clock" | "workers" | "payments" | "events"
    >,
    private readonly options: {
      reservationTtlMs: number;
      idleReleaseMs: number;
      /** Most tasks an idle node takes at once (at most MAX_TASKS_PER_RUN). */
      maxTasksPerRun: number;
    },
    private readonly settler: LeaseSettler,
    private readonly offers: Offers,
  ) {}

  /** One round: grow or shrink towards the queue's need, then give queued tasks to idle nodes. */
  async step(clusterId: string): Promise<void> {
    const round: Round = { nowMs: this.resources.clock.now(), sends: [], statuses: [] };
    await runInTransaction(this.resources.db, async (tx) => {
      // A rerun (runInTransaction) starts afresh.
      round.sends = [];
      round.statuses = [];
      const cluster = await loadCluster(tx, clusterId);
      const bounds = cluster.autoscale;
      if (bounds === null || isFinal(cluster.status) || cluster.endsAtMs === null) return;
      const counts = await tx
        .selectFrom("cluster_tasks")
        .select(["status", (eb) => eb.fn.countAll<number | string>().as("n")])
        .where("cluster_id", "=", clusterId)
        .where("status", "in", ["queued", "running"])
        .groupBy("status")
        .execute();
      const countOf = (status: string) => Number(counts.find((c) => c.status === status)?.n ?? 0);
      const queuedCount = countOf("queued");
      const total = queuedCount + countOf("running");
      const leases = cluster.nodes.filter((n) => n.active && n.rank !== null);
      const need = {
        desired: Math.min(bounds.max, Math.max(bounds.min, Math.ceil(total / bounds.tasksPerNode))),
        min: bounds.min,
        why: `${queuedCount} queued + ${total - queuedCount} running tasks at ${bounds.tasksPerNode} per node`,
      };
      const scaled =
        need.desired > leases.length
          ? await this.scaleUp(tx, cluster, leases, need, round)
          : queuedCount === 0 && leases.length > need.desired
            ? await this.scaleDown(tx, cluster, leases, need, round)
            : leases;
      // Idle nodes take queued tasks, oldest first: the queue shared out among them, up to
      // MAX_TASKS_PER_RUN each, in one run per node (./task-runs.ts).
      const idle = scaled.filter((n) => n.status === "staged");
      if (idle.length === 0 || queuedCount === 0) return;
      const most = Math.min(MAX_TASKS_PER_RUN, this.options.maxTasksPerRun);
      const perNode = Math.min(most, Math.ceil(queuedCount / idle.length));
      const queued = await tx
        .selectFrom("cluster_tasks")
        .select(["seq", "command"])
        .where("cluster_id", "=", clusterId)
        .where("status", "=", "queued")
        .orderBy("seq")
        .limit(perNode * idle.length)
        .execute();
      for (const [i, run] of shareOut(queued, idle.length, perNode).entries())
        await this.assign(tx, cluster, idle[i]!, run, scaled.length, round);
    });
    for (const status of round.statuses)
      this.resources.events.emit("node:status", { ...status, atMs: round.nowMs });
    for (const { nodeId, message } of round.sends) this.resources.workers.send(nodeId, message);
  }

  /** Grows towards `need`; the cluster's rank leases after. */
  private async scaleUp(
    tx: Tx,
    cluster: LoadedCluster,
    leases: LoadedLease[],
    need: Need,
    round: Round,
  ): Promise<LoadedLease[]> {
    const added = await this.grow(tx, cluster, need.desired - leases.length, round);
    if (added.length === 0) return leases;
    await appendClusterEvent(tx, cluster.id, round.nowMs, "scaled-up", {
      from: leases.length,
      to: leases.length + added.length,
      nodes: added.map((n) => n.nodeId),
      reason:
        leases.length < need.min
          ? `below the minimum of ${need.min}`
          : `${need.why} → ${need.desired} nodes`,
    });
    return (await loadCluster(tx, cluster.id)).nodes.filter((n) => n.active && n.rank !== null);
  }

  /** Releases nodes idle long enough, down to `need`; the rank leases kept. */
  private async scaleDown(
    tx: Tx,
    cluster: LoadedCluster,
    leases: LoadedLease[],
    need: Need,
    round: Round,
  ): Promise<LoadedLease[]> {
    const now = round.nowMs;
    const idle = leases.filter(
      (n) =>
        n.status === "staged" &&
        n.idleSinceMs !== null &&
        now - n.idleSinceMs >= this.options.idleReleaseMs,
    );
    const released = idle.slice(0, leases.length - need.desired);
    if (released.length === 0) return leases;
    for (const lease of released) {
      await this.settler.endLease(tx, cluster, lease, {
        status: "released",
        billedUntil: now,
        reason: "scaled down",
        nowMs: now,
      });
      const result = await applyInTx(
        tx,
        lease.nodeId,
        { type: "release" },
        { actor: "scheduler", reason: `scaled down from ${cluster.id}`, nowMs: now },
      );
      if (result.ok)
        round.statuses.push({
          nodeId: lease.nodeId,
          from: result.from,
          to: result.to,
          reason: "scaled down",
        });
      round.sends.push({
        nodeId: lease.nodeId,
        message: { type: "job-stop", clusterId: cluster.id, reason: "scaled down" },
      });
    }
    await appendClusterEvent(tx, cluster.id, now, "scaled-down", {
      from: leases.length,
      to: leases.length - released.length,
      nodes: released.map((n) => n.nodeId),
      reason: `no queued task and idle for ${this.options.idleReleaseMs / 1000} s; ${need.why} → ${need.desired} nodes`,
    });
    const gone = new Set(released.map((n) => n.seq));
    return leases.filter((n) => !gone.has(n.seq));
  }

  /**
   * An idle node takes queued tasks: one `job-start` whose attempt is the first task's number; a
   * single task as the run's command, several as its `tasks` (./task-runs.ts).
   */
  private async assign(
    tx: Tx,
    cluster: LoadedCluster,
    lease: LoadedLease,
    tasks: ReadonlyArray<{ seq: number; command: string }>,
    worldSize: number,
    round: Round,
  ): Promise<void> {
    const now = round.nowMs;
    const first = tasks[0]!.seq;
    await tx
      .updateTable("cluster_tasks")
      .set({ status: "running", lease_seq: lease.seq, node_id: lease.nodeId, started_at: now })
      .where("cluster_id", "=", cluster.id)
      .where(
        "seq",
        "in",
        tasks.map((t) => t.seq),
      )
      .execute();
    await moveLease(
      tx,
      { clusterId: cluster.id, seq: lease.seq, status: lease.status },
      { type: "assign" },
      {
        attempt: first,
        reservedUntilMs: now + this.options.reservationTtlMs,
        idleSinceMs: null,
      },
      { nowMs: now, reason: tasks.length === 1 ? `task ${first}` : `tasks ${taskRange(tasks)}` },
    );
    round.sends.push({
      nodeId: lease.nodeId,
      message: taskRunStart(cluster, lease.rank!, worldSize, tasks),
    });
  }

  /** Adds up to `count` nodes the escrow can pay until the cluster's end; answers those added. */
  private async grow(
    tx: Tx,
    cluster: LoadedCluster,
    count: number,
    round: Round,
  ): Promise<PlacedNode[]> {
    const now = round.nowMs;
    const active = cluster.nodes.filter((n) => n.active);
    // Settle to now, so the escrow holds exactly what is still owed plus what is free.
    for (const lease of active) await this.settler.settleLease(tx, cluster, lease, now);
    // Whole minutes a lease can still be paid is at most this (its minutes are rounded down).
    const minutesLeft = Math.ceil((cluster.endsAtMs! - now) / 60_000);
    const owed = (price: Money) => mulDivCeil(price, BigInt(minutesLeft), 60n);
    let free = await this.resources.payments.escrowBalance(tx, cluster.id, cluster.currency);
    for (const lease of active) free = sub(free, owed(lease.pricePerHour));
    // New nodes cost no more per hour than the dearest node the cluster was charged for.
    const ceiling = cluster.nodes.reduce((m, n) => max(m, n.pricePerHour), ZERO);
    const added: PlacedNode[] = [];
    let rank = Math.max(...cluster.nodes.map((n) => n.rank ?? -1)) + 1;
    let seq = Math.max(...cluster.nodes.map((n) => n.seq)) + 1;
    for (let i = 0; i < count; i++) {
      if (free < owed(ceiling)) break;
      const node = this.offers.placeFresh(cluster, ceiling, true);
      if (node === undefined) break;
      const leased = await applyInTx(
        tx,
        node.nodeId,
        { type: "lease" },
        { actor: "scheduler", reason: `scaled up ${cluster.id}`, nowMs: now },
      );
      if (!leased.ok) break;
      round.statuses.push({
        nodeId: node.nodeId,
        from: leased.from,
        to: leased.to,
        reason: "scaled up",
      });
      await addLeases(
        tx,
        [
          {
            ...leaseRow(cluster.id, seq++, node, node.price),
            rank: rank++,
            role: "worker",
            status: "staged",
            reserved_until: null,
            started_at: now,
            idle_since: now,
          },
        ],
        { nowMs: now, reason: "scaled up" },
      );
      free = sub(free, owed(node.price));
      added.push(node);
    }
    return added;
  }

  /** The start of the tasks a reserved lease was given, to send again after a reconnect. */
  async taskStart(cluster: LoadedCluster, lease: LoadedLease) {
    const tasks = await this.resources.db
      .selectFrom("cluster_tasks")
      .select(["seq", "command"])
      .where("cluster_id", "=", cluster.id)
      .where("lease_seq", "=", lease.seq)
      .where("status", "=", "running")
      .orderBy("seq")
      .execute();
    if (tasks[0]?.seq !== lease.attempt || lease.rank === null) return undefined;
    const worldSize = cluster.nodes.filter((n) => n.active && n.rank !== null).length;
    return taskRunStart(cluster, lease.rank, worldSize, tasks);
  }

  /**
   * A task run ended on its node: each task is done (or failed) with its own exit, the node idle
   * again. A single task's exit is the run's; a run of several reports each in `taskExits`, and a
   * task of it with none never ended by itself: it failed, with no exit code. Answers the tasks
   * as recorded.
   */
  async onTaskExit(
    tx: Tx,
    lease: LeaseRef,
    run: { attempt: number; exitCode: number | null; taskExits?: TaskExit[] | undefined },
  ): Promise<TaskExit[]> {
    const clusterId = lease.clusterId;
    const now = this.resources.clock.now();
    const running = await tx
      .selectFrom("cluster_tasks")
      .select("seq")
      .where("cluster_id", "=", clusterId)
      .where("lease_seq", "=", lease.seq)
      .where("status", "=", "running")
      .orderBy("seq")
      .execute();
    const reported = new Map(
      run.taskExits === undefined
        ? [[run.attempt, run.exitCode]]
        : run.taskExits.map((e) => [e.seq, e.exitCode]),
    );
    const ended = running.map((t) => ({ seq: t.seq, exitCode: reported.get(t.seq) ?? null }));
    for (const exitCode of new Set(ended.map((e) => e.exitCode)))
      await tx
        .updateTable("cluster_tasks")
        .set({ status: exitCode === 0 ? "done" : "failed", exit_code: exitCode, ended_at: now })
        .where("cluster_id", "=", clusterId)
        .where(
          "seq",
          "in",
          ended.filter((e) => e.exitCode === exitCode).map((e) => e.seq),
        )
        .where("status", "=", "running")
        .execute();
    await moveLease(
      tx,
      lease,
      { type: "idle" },
      { reservedUntilMs: null, idleSinceMs: now },
      {
        nowMs: now,
        reason:
          ended.length === 1
            ? `task ${run.attempt} ended (exit ${ended[0]!.exitCode})`
            : `tasks ${taskRange(ended)} ended`,
      },
    );
    return ended;
  }
}
