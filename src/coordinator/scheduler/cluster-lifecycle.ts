import { sql, type Insertable } from "kysely";
import {
  nextClusterStatus,
  type ClusterStatus,
  type ClusterTransition,
} from "../../core/cluster-status.ts";
import { ErrorCode, TandemError } from "../../core/errors.ts";
import {
  nextLeaseStatus,
  parseLeaseStatus,
  type LeaseStatus,
  type LeaseTransition,
} from "../../core/lease-status.ts";
import type { ClusterNodesTable, ClustersTable } from "../store/cluster-schema.ts";
import type { Tx } from "../store/transaction.ts";

/**
 * The one writer of the `clusters` and `cluster_nodes` rows (an ESLint rule refuses writes to them
 * anywhere else in src/). Status changes go through the machines of core/cluster-status.ts and
 * core/lease-status.ts: each checks its precondition, writes compare-and-set on the status it
 * read (so a replica that changed the row first wins and the loser changes nothing), and appends
 * a `cluster_history` row (from, to, reason, time). Every function runs in the caller's
 * transaction; the caller publishes events once it commits (`cluster:status`).
 */

/** What a status change is told: when, and why (kept in the history). */
export interface Change {
  nowMs: number;
  reason: string;
}

/** A lease as its caller read it: which row, and the status it saw. */
export interface LeaseRef {
  clusterId: string;
  seq: number;
  status: string;
}

/** The other columns a lease transition may set with its status. */
export interface LeaseChanges {
  attempt?: number;
  reservedUntilMs?: number | null;
  /** Billing starts when a lease first runs: set only where it is still unset. */
  startedAtMs?: number;
  exitCode?: number | null;
  endedAtMs?: number;
  billedUntilMs?: number;
  endReason?: string;
  idleSinceMs?: number | null;
}

/** A new cluster, `provisioning` (or `running` when autoscaled: its nodes idle for tasks). */
export async function createCluster(
  tx: Tx,
  row: Insertable<ClustersTable> & { status: "provisioning" | "running" },
  change: Change,
): Promise<void> {
  await tx.insertInto("clusters").values(row).execute();
  await appendHistory(tx, row.id, null, null, row.status, change);
}

/** New leases: `reserved` (a start follows) or `staged` (held idle: a standby, an autoscaled node). */
export async function addLeases(
  tx: Tx,
  rows: ReadonlyArray<Insertable<ClusterNodesTable> & { status: "reserved" | "staged" }>,
  change: Change,
): Promise<void> {
  if (rows.length === 0) return;
  await tx.insertInto("cluster_nodes").values(rows).execute();
  await tx
    .insertInto("cluster_history")
    .values(
      rows.map((row) => ({
        cluster_id: row.cluster_id,
        lease_seq: row.seq,
        from_status: null,
        to_status: row.status,
        reason: change.reason,
        at: change.nowMs,
      })),
    )
    .execute();
}

/**
 * Moves a cluster's status (compare-and-set on `from`); false when another writer moved it first.
 * A start sets the paid period from now; an end stamps its time.
 */
export async function moveCluster(
  tx: Tx,
  cluster: { id: string; status: ClusterStatus; hours: number },
  transition: ClusterTransition,
  change: Change,
): Promise<boolean> {
  const to = nextClusterStatus(cluster.status, transition);
  if (to === undefined) throw invalid("cluster", cluster.id, cluster.status, transition.type);
  const moved = await tx
    .updateTable("clusters")
    .set(
      transition.type === "start"
        ? {
            status: to,
            started_at: change.nowMs,
            ends_at: change.nowMs + cluster.hours * 3_600_000,
          }
        : { status: to, ended_at: change.nowMs },
    )
    .where("id", "=", cluster.id)
    .where("status", "=", cluster.status)
    .executeTakeFirst();
  if (moved.numUpdatedRows === 0n) return false;
  await appendHistory(tx, cluster.id, null, cluster.status, to, change);
  return true;
}

/** Buys `hours` more of a cluster: its hours, and its end when it has started. */
export async function extendCluster(
  tx: Tx,
  cluster: { id: string; hours: number; endsAtMs: number | null },
  hours: number,
): Promise<void> {
  await tx
    .updateTable("clusters")
    .set({
      hours: cluster.hours + hours,
      ...(cluster.endsAtMs === null ? {} : { ends_at: cluster.endsAtMs + hours * 3_600_000 }),
    })
    .where("id", "=", cluster.id)
    .execute();
}

/**
 * Moves a held lease (compare-and-set on the status its caller read); false when the row had
 * moved on. Leaving and releasing stop it holding its node (`active` 0).
 */
export async function moveLease(
  tx: Tx,
  lease: LeaseRef,
  transition: LeaseTransition,
  changes: LeaseChanges,
  change: Change,
): Promise<boolean> {
  const from = parseLeaseStatus(lease.status);
  const to = nextLeaseStatus(from, transition);
  if (to === undefined)
    throw invalid("lease", `${lease.clusterId}/${lease.seq}`, from, transition.type);
  const letGo = transition.type === "leave" || transition.type === "release";
  const moved = await tx
    .updateTable("cluster_nodes")
    .set({
      status: to,
      ...(letGo ? { active: 0 } : {}),
      ...(changes.attempt === undefined ? {} : { attempt: changes.attempt }),
      ...(changes.reservedUntilMs === undefined ? {} : { reserved_until: changes.reservedUntilMs }),
      ...(changes.startedAtMs === undefined
        ? {}
        : { started_at: sql<number>`coalesce(started_at, ${changes.startedAtMs})` }),
      ...(changes.exitCode === undefined ? {} : { exit_code: changes.exitCode }),
      ...(changes.endedAtMs === undefined ? {} : { ended_at: changes.endedAtMs }),
      ...(changes.billedUntilMs === undefined ? {} : { billed_until: changes.billedUntilMs }),
      ...(changes.endReason === undefined ? {} : { end_reason: changes.endReason }),
      ...(changes.idleSinceMs === undefined ? {} : { idle_since: changes.idleSinceMs }),
    })
    .where("cluster_id", "=", lease.clusterId)
    .where("seq", "=", lease.seq)
    .where("active", "=", 1)
    .where("status", "=", from)
    .executeTakeFirst();
  if (moved.numUpdatedRows === 0n) return false;
  if (to !== from) await appendHistory(tx, lease.clusterId, lease.seq, from, to, change);
  return true;
}

/** Renews the reservations of a cluster's ranks still waiting to start, to `untilMs`. */
export async function renewReservations(tx: Tx, clusterId: string, untilMs: number): Promise<void> {
  await tx
    .updateTable("cluster_nodes")
    .set({ reserved_until: untilMs })
    .where("cluster_id", "=", clusterId)
    .where("active", "=", 1)
    .where("status", "=", "reserved" satisfies LeaseStatus)
    .execute();
}

async function appendHistory(
  tx: Tx,
  clusterId: string,
  leaseSeq: number | null,
  from: string | null,
  to: string,
  change: Change,
): Promise<void> {
  await tx
    .insertInto("cluster_history")
    .values({
      cluster_id: clusterId,
      lease_seq: leaseSeq,
      from_status: from,
      to_status: to,
      reason: change.reason,
      at: change.nowMs,
    })
    .execute();
}

function invalid(what: string, id: string, from: string, transition: string): TandemError {
  return new TandemError(
    ErrorCode.INVALID_TRANSITION,
    `${what} ${id} cannot ${transition} from ${from}`,
    { details: { from, transition } },
  );
}
