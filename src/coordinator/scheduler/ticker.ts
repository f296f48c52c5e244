import type { Kysely } from "kysely";
import type { Leadership } from "../replicas/leader-election.ts";
import type { Database } from "../store/schema.ts";
import type { Autoscaler } from "./autoscaler.ts";
import type { ClusterEnds } from "./cluster-ends.ts";
import type { ClusterQueue } from "./cluster-queue.ts";
import { secretsPending } from "./cluster-secrets.ts";
import { loadCluster } from "./cluster-store.ts";
import type { Failover } from "./failover.ts";
import type { SchedulerResources } from "./resources.ts";
import type { LeaseSettler } from "./settlement.ts";

/**
 * The scheduler's clock: every `tickMs` it ends clusters whose paid time is over, moves lapsed
 * reservations, then settles every running cluster in one pass (./settlement.ts), then lets
 * autoscaled clusters take their next step. With replicas, only the leader's ticks do anything,
 * and what they write is fenced by its term (../replicas/leader-election.ts).
 */
export class SchedulerTicker {
  private timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly resources: Pick<SchedulerResources, "db" | "clock" | "logger">,
    private readonly options: { tickMs: number; reservationTtlMs: number },
    private readonly queue: ClusterQueue,
    private readonly settler: LeaseSettler,
    private readonly failover: Failover,
    private readonly autoscaler: Autoscaler,
    private readonly ends: ClusterEnds,
    private readonly leadership: Pick<Leadership, "asLeader">,
  ) {}

  start(): void {
    this.timer = setInterval(
      () =>
        void this.tick().catch((error: unknown) =>
          this.resources.logger.error({ err: error }, "scheduler tick failed"),
        ),
      this.options.tickMs,
    );
    this.timer.unref();
  }

  /** Stops the tick and waits for the work under way on every cluster (before the store closes). */
  async stop(): Promise<void> {
    clearInterval(this.timer);
    await this.queue.idle();
  }

  /** One pass, on the leader; resolves false without one on a follower. */
  tick(): Promise<boolean> {
    return this.leadership.asLeader(() => this.pass());
  }

  private async pass(): Promise<void> {
    const { db } = this.resources;
    const now = this.resources.clock.now();
    const live = await db
      .selectFrom("clusters")
      .select(["id", "status", "ends_at", "autoscale"])
      .where("status", "in", ["provisioning", "running"])
      .execute();
    // One read finds every lapsed reservation; only clusters with something to do are visited.
    const lapsedIn = new Set(
      (await lapsedReservations(db, now).select("cluster_id").distinct().execute()).map(
        (r) => r.cluster_id,
      ),
    );
    const expired = new Set<string>();
    for (const row of live) {
      if (row.status === "running" && row.ends_at !== null && Number(row.ends_at) <= now)
        expired.add(row.id);
      if (!expired.has(row.id) && !lapsedIn.has(row.id)) continue;
      await this.queue.serial(row.id, async () => {
        if (expired.has(row.id)) return this.ends.finish(row.id, "expired", "paid time is over");
        const ttlMs = this.options.reservationTtlMs;
        if (await secretsPending(db, await loadCluster(db, row.id)))
          return this.ends.finish(
            row.id,
            "failed",
            `secrets not sent within ${ttlMs} ms of the deploy`,
          );
        const lapsed = await lapsedReservations(db, now)
          .select(["seq", "node_id", "rank"])
          .where("cluster_id", "=", row.id)
          .execute();
        for (const lease of lapsed)
          await this.failover.failLease(row.id, lease.seq, {
            end: "never-accepted",
            reason: `node ${lease.node_id} did not accept rank ${lease.rank} within ${ttlMs} ms`,
          });
      });
    }
    const running = live.filter((row) => row.status === "running" && !expired.has(row.id));
    await this.settler.settleRunning(
      running.map((row) => row.id),
      now,
    );
    for (const row of running)
      if (row.autoscale !== null)
        await this.queue.serial(row.id, () => this.autoscaler.step(row.id));
  }
}

/** Reservations whose worker did not accept in time (a query to select from). */
function lapsedReservations(db: Kysely<Database>, now: number) {
  return db
    .selectFrom("cluster_nodes")
    .where("active", "=", 1)
    .where("status", "=", "reserved")
    .where("reserved_until", "<", now);
}
