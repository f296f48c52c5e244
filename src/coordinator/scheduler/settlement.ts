import { ErrorCode, TandemError } from "../../core/errors.ts";
import { leaseServedMinutes } from "../../core/failover.ts";
import type { LeaseLeave } from "../../core/lease-status.ts";
import { moveLease } from "./cluster-lifecycle.ts";
import type { ClusterQueue } from "./cluster-queue.ts";
import { loadClustersIn, type LoadedCluster, type LoadedLease } from "./cluster-store.ts";
import { leaseId } from "./leases.ts";
import type { LeaseSettlement, UnpaidLease } from "./payments.ts";
import type { SchedulerResources } from "./resources.ts";
import { runInTransaction, type Tx } from "../store/transaction.ts";

/** How a lease stops holding its node before its cluster ends. */
export interface LeaseExit {
  status: LeaseLeave;
  billedUntil: number;
  reason: string;
  nowMs: number;
}

/**
 * Served time into money: each lease is paid per whole minute served, up to its worker's last
 * sign of life — never for time a node may not have served. One pass settles every running
 * cluster in one transaction; a lease that leaves early is settled to its end first.
 */
export class LeaseSettler {
  /** Each running lease's served minutes as last settled by a pass (lost on restart: harmless). */
  private settledMinutes = new Map<string, number>();

  constructor(
    private readonly resources: Pick<SchedulerResources, "db" | "workers" | "payments" | "logger">,
    private readonly queue: ClusterQueue,
  ) {}

  /** Pays a lease its served minutes up to `nowMs` (in the caller's transaction). */
  async settleLease(
    tx: Tx,
    cluster: LoadedCluster,
    lease: LoadedLease,
    nowMs: number,
  ): Promise<void> {
    const [unpaid] = await this.resources.payments.settle(tx, [
      settlementOf(cluster, lease, nowMs),
    ]);
    // Escrow always holds what the quote said: a lease it cannot pay must not be closed.
    if (unpaid !== undefined) throw unpaidError(unpaid);
  }

  /** Settles a lease up to `billedUntil` (no later than its worker was heard serving) and closes it. */
  async endLease(
    tx: Tx,
    cluster: LoadedCluster,
    lease: LoadedLease,
    end: LeaseExit,
  ): Promise<void> {
    const billedUntil = Math.min(
      end.billedUntil,
      this.resources.workers.servedUntilMs(lease.nodeId) ?? end.billedUntil,
    );
    await this.settleLease(tx, cluster, { ...lease, billedUntilMs: billedUntil }, end.nowMs);
    await moveLease(
      tx,
      { clusterId: cluster.id, seq: lease.seq, status: lease.status },
      { type: "leave", as: end.status },
      {
        reservedUntilMs: null,
        billedUntilMs: billedUntil,
        endedAtMs: end.nowMs,
        endReason: end.reason,
      },
      { nowMs: end.nowMs, reason: end.reason },
    );
  }

  /**
   * One settlement pass over the leases of every cluster among `clusterIds` still running, holding
   * all their queues. Each lease is paid up to its worker's last sign of life, not to now: a node
   * that died unnoticed (or while the coordinator was down) is not paid until its loss is detected.
   */
  async settleRunning(clusterIds: readonly string[], now: number): Promise<void> {
    if (clusterIds.length === 0) return;
    const wanted = new Set(clusterIds);
    // Ticks come every second; a lease earns once a minute. Only leases whose served minutes
    // moved since the last pass settled them are passed (a restart passes all once: replays).
    const settled = new Map<string, number>();
    await this.queue.serialAll(clusterIds, () =>
      runInTransaction(this.resources.db, async (tx) => {
        settled.clear(); // a rerun starts afresh
        const leases: LeaseSettlement[] = [];
        for (const cluster of await loadClustersIn(tx, "running")) {
          if (!wanted.has(cluster.id)) continue; // started since the tick began: the next one
          for (const lease of cluster.nodes.filter((n) => n.active)) {
            const served = this.resources.workers.servedUntilMs(lease.nodeId);
            if (served === undefined) continue;
            const settlement = settlementOf(cluster, lease, Math.min(now, served));
            settled.set(settlement.leaseId, settlement.servedMinutes);
            if (this.settledMinutes.get(settlement.leaseId) !== settlement.servedMinutes)
              leases.push(settlement);
          }
        }
        // A lease its escrow cannot pay (a broken invariant) is reported; the others are paid.
        const unpaid = leases.length === 0 ? [] : await this.resources.payments.settle(tx, leases);
        for (const lease of unpaid) {
          settled.delete(lease.leaseId);
          this.resources.logger.error({ err: unpaidError(lease) }, "settlement failed");
        }
      }),
    );
    this.settledMinutes = settled; // committed; leases that ended drop out
  }
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
