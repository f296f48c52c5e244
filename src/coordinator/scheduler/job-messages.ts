import type { z } from "zod";
import { isFinal } from "../../core/cluster-status.ts";
import { exitEnd, rankEndCause, type RankEnd } from "../../core/rank-end-cause.ts";
import type { JobExitMessage, WorkerJobMessage } from "../../protocol/worker-messages.ts";
import type { Autoscaler } from "./autoscaler.ts";
import type { ClusterEnds } from "./cluster-ends.ts";
import { moveCluster, moveLease, type LeaseRef } from "./cluster-lifecycle.ts";
import type { OverlayExchange } from "./cluster-network.ts";
import type { ClusterQueue } from "./cluster-queue.ts";
import { appendClusterEvent, loadCluster, type LoadedCluster } from "./cluster-store.ts";
import type { Drains } from "./drains.ts";
import type { Failover } from "./failover.ts";
import type { LogWriter } from "./log-writer.ts";
import type { RankMoves } from "./rank-moves.ts";
import type { Rendezvous } from "./rendezvous.ts";
import type { SchedulerResources } from "./resources.ts";
import { runInTransaction, type Tx } from "../store/transaction.ts";

/**
 * Where a worker's job messages go. Each runs in its cluster's queue and only for the lease that
 * sent it (its node, rank and attempt, still active): workers resend accepts and exits after a
 * reconnect (worker/jobs/job-outbox.ts), so every handler is idempotent. Logs skip the queue.
 */
export class JobMessageRouter {
  constructor(
    private readonly resources: Pick<SchedulerResources, "db" | "clock" | "events">,
    private readonly queue: ClusterQueue,
    private readonly logs: LogWriter,
    private readonly rendezvous: Rendezvous,
    private readonly overlays: OverlayExchange,
    private readonly failover: Failover,
    private readonly moves: RankMoves,
    private readonly drains: Drains,
    private readonly autoscaler: Autoscaler,
    private readonly ends: ClusterEnds,
  ) {}

  /** Messages from the worker that serves `nodeId`. */
  async onJobMessage(nodeId: string, message: WorkerJobMessage): Promise<void> {
    if (message.type === "drain") return this.drains.drain(nodeId, message.reason);
    if (message.type === "secrets-resealed")
      return this.queue.serial(message.clusterId, () =>
        this.rendezvous.onResealed(nodeId, message),
      );
    if (message.type === "job-log") {
      // Logs change no state and are written in batches.
      this.logs.offer(nodeId, message);
      return;
    }
    if (message.type === "job-exit") await this.logs.written();
    await this.queue.serial(message.clusterId, async () => {
      const lease = await this.activeLease(nodeId, message);
      if (lease === undefined) return; // not this node's run (stale attempt, or released): ignore
      // Only a run still under way changes anything. An exit already recorded is judged again,
      // in case the coordinator died between recording it and ending the cluster.
      if (lease.status !== "reserved" && lease.status !== "running") {
        const recorded = lease.status === "exited" || lease.status === "failed";
        if (message.type === "job-exit" && recorded && !lease.autoscaled)
          await this.judgeExit(message.clusterId, message.rank, lease.status === "exited");
        return;
      }
      if (message.type === "job-rendezvous") {
        const cluster = await loadCluster(this.resources.db, message.clusterId);
        if (lease.status === "reserved" && !isFinal(cluster.status) && cluster.autoscale === null)
          await this.headReady(nodeId, cluster, message.attempt, message.port, message.overlay);
        return;
      }
      if (message.type === "job-accepted") return this.onAccepted(nodeId, lease, message);
      if (message.type === "job-network")
        return this.overlays.onJobNetwork(nodeId, message, this.resources.clock.now());
      // A run its worker fenced while this lease stayed active: the coordinator was away (a
      // restart), not the node, so the rank moves without a slash.
      if (message.fenced === true)
        return this.failover.failLease(message.clusterId, lease.seq, {
          end: "link-lost",
          reason: `rank ${message.rank} stopped by its worker while the coordinator was unreachable`,
        });
      // A sealed secret that does not open on its node was sealed wrong: the consumer's cause.
      if (message.secretsRefused === true)
        return this.ends.finish(
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
      if (lease.autoscaled) return this.onTaskExit(lease, message, end);
      return this.onExit(lease, message, end);
    });
  }

  private async activeLease(
    nodeId: string,
    message: { clusterId: string; rank: number; attempt: number },
  ): Promise<(LeaseRef & { autoscaled: boolean }) | undefined> {
    const lease = await this.resources.db
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
      : {
          clusterId: message.clusterId,
          seq: lease.seq,
          status: lease.status,
          autoscaled: lease.autoscale !== null,
        };
  }

  /** The head's address is known; a head that gave none fails its cluster. */
  private async headReady(...args: Parameters<Rendezvous["headReady"]>): Promise<boolean> {
    const ready = await this.rendezvous.headReady(...args);
    if (!ready)
      await this.ends.finish(args[1].id, "failed", "the head did not report a rendezvous address");
    return ready;
  }

  private async onAccepted(
    nodeId: string,
    lease: LeaseRef,
    message: {
      clusterId: string;
      rank: number;
      attempt: number;
      port: number | null;
      overlay?: true | undefined;
    },
  ): Promise<void> {
    const { clusterId, rank, attempt } = message;
    const now = this.resources.clock.now();
    const cluster = await loadCluster(this.resources.db, clusterId);
    if (isFinal(cluster.status)) return;
    if (rank === 0 && cluster.autoscale === null) {
      if (!(await this.headReady(nodeId, cluster, attempt, message.port, message.overlay))) return;
    }
    const started = await runInTransaction(this.resources.db, async (tx) => {
      // A resent accept of a lease already running changes nothing of it.
      if (lease.status === "reserved")
        await moveLease(
          tx,
          lease,
          { type: "accept" },
          // Billing starts when a lease first runs (and no earlier than the cluster's start).
          { reservedUntilMs: null, startedAtMs: now },
          { nowMs: now, reason: `rank ${rank} accepted attempt ${attempt}` },
        );
      const takeover = this.moves.tookOver(clusterId, rank);
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
      return this.startIfAllAccepted(tx, cluster, now);
    });
    if (started)
      this.resources.events.emit("cluster:status", {
        clusterId,
        from: "provisioning",
        to: "running",
        atMs: now,
        reason: "every rank accepted",
        releasedNodeIds: [],
      });
  }

  /** A provisioning cluster whose every rank has accepted starts running (and paying) now. */
  private async startIfAllAccepted(tx: Tx, cluster: LoadedCluster, now: number): Promise<boolean> {
    if (cluster.status !== "provisioning") return false;
    const waiting = await tx
      .selectFrom("cluster_nodes")
      .select("seq")
      .where("cluster_id", "=", cluster.id)
      .where("active", "=", 1)
      .where("status", "=", "reserved")
      .execute();
    if (waiting.length > 0) return false;
    // The cluster as read in this queue turn (an extension waits its turn behind it).
    const change = { nowMs: now, reason: "every rank accepted" };
    if (!(await moveCluster(tx, cluster, { type: "start" }, change))) return false;
    await appendClusterEvent(tx, cluster.id, now, "running", {
      provisioningMs: now - cluster.createdAtMs,
    });
    return true;
  }

  /**
   * A task run of an autoscaled cluster ended: record each task's end (one `task-ended` event
   * each), then the next round of scaling. A task of several that recorded its own exit ended by
   * itself; the others share the run's end (stopped, over a limit).
   */
  private async onTaskExit(
    lease: LeaseRef,
    message: z.infer<typeof JobExitMessage>,
    end: RankEnd,
  ): Promise<void> {
    const now = this.resources.clock.now();
    const own = new Set(message.taskExits?.map((e) => e.seq));
    await runInTransaction(this.resources.db, async (tx) => {
      const ended = await this.autoscaler.onTaskExit(tx, lease, message);
      for (const task of ended) {
        const taskEnd = own.has(task.seq) ? exitEnd({ ...task, error: null }) : end;
        await appendClusterEvent(tx, message.clusterId, now, "task-ended", {
          task: task.seq,
          rank: message.rank,
          exitCode: task.exitCode,
          ...(own.has(task.seq)
            ? {}
            : {
                signal: message.signal,
                ...(message.limitExceeded === undefined
                  ? {}
                  : { limitExceeded: message.limitExceeded }),
                ...(message.error === null ? {} : { error: message.error }),
              }),
          cause: rankEndCause(taskEnd),
          end: taskEnd,
        });
      }
    });
    await this.autoscaler.step(message.clusterId);
  }

  private async onExit(
    lease: LeaseRef,
    message: z.infer<typeof JobExitMessage>,
    end: RankEnd,
  ): Promise<void> {
    const now = this.resources.clock.now();
    const ok = message.exitCode === 0;
    await runInTransaction(this.resources.db, async (tx) => {
      await moveLease(
        tx,
        lease,
        { type: "exit", ok },
        { exitCode: message.exitCode, endedAtMs: now },
        { nowMs: now, reason: `rank ${message.rank} exited (${end})` },
      );
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
    const cluster = await loadCluster(this.resources.db, clusterId);
    if (isFinal(cluster.status)) return;
    const verdict = endVerdict(cluster, rank, ok);
    if (verdict !== undefined) await this.ends.finish(cluster.id, verdict.status, verdict.reason);
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
