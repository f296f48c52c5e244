/**
 * Money checks read straight from a coordinator's database once it is stopped, for the crash
 * tests: what the ledger audit cannot see because it sums whole currencies. Each check answers the
 * problems it found, as sentences, so a failure shows all of them at once.
 *
 * - no lease paid twice: per ledger lease id, Σ escrow released by its settlements equals the
 *   rental of the most minutes any one of them recorded, at the lease's one price, and those
 *   minutes fit in the time the lease could have served;
 * - no refund twice: at most one refund per cluster, and once ended its escrow is empty;
 * - one charge per purchase: one deploy charge per cluster, one extension charge per `extended`
 *   event;
 * - idempotency keys: each deploy key names at most one cluster, each money movement key at most
 *   one ledger transaction.
 */
import { sql, type Kysely } from "kysely";
import type { Database } from "../../src/coordinator/store/schema.ts";
import { rentalFor } from "../../src/core/fees.ts";
import { ZERO, money, units } from "../../src/core/money.ts";

const FINAL = ["completed", "failed", "terminated", "expired"];

/** No lease paid twice, and none paid for minutes it could not have served. */
export async function leaseProblems(db: Kysely<Database>): Promise<string[]> {
  const settlements = await db
    .selectFrom("ledger_transactions")
    .select(["id", "lease_id", "cluster_id", "served_minutes", "metadata"])
    .where("kind", "=", "settlement")
    .execute();
  const released = await sql<{ lease_id: string; total: string }>`
    SELECT t.lease_id, CAST(-SUM(p.amount) AS TEXT) AS total
    FROM ledger_postings p JOIN ledger_transactions t ON t.id = p.transaction_id
    WHERE t.kind = 'settlement' AND p.leg = 'served' AND p.account LIKE 'escrow:%'
    GROUP BY t.lease_id`.execute(db);
  const releasedByLease = new Map(released.rows.map((r) => [r.lease_id, units(r.total)]));
  const leases = await db
    .selectFrom("cluster_nodes as n")
    .innerJoin("clusters as c", "c.id", "n.cluster_id")
    .select([
      "n.cluster_id",
      "n.seq",
      "n.price_per_hour",
      "n.started_at",
      "n.billed_until",
      "c.started_at as cluster_started_at",
      "c.ends_at",
      "c.ended_at",
    ])
    .execute();
  const leaseById = new Map(leases.map((l) => [`${l.cluster_id}/${l.seq}`, l]));

  const byLease = new Map<string, typeof settlements>();
  for (const s of settlements) {
    const list = byLease.get(s.lease_id ?? "") ?? [];
    list.push(s);
    byLease.set(s.lease_id ?? "", list);
  }
  const problems: string[] = [];
  for (const [leaseId, rows] of byLease) {
    const lease = leaseById.get(leaseId);
    if (lease === undefined) {
      problems.push(`settlements ${rows.map((r) => r.id).join(", ")} name no lease (${leaseId})`);
      continue;
    }
    const prices = new Set(
      rows.map((r) => (JSON.parse(r.metadata) as { pricePerHour: string }).pricePerHour),
    );
    const price = money([...prices][0]!);
    if (prices.size !== 1 || price !== units(lease.price_per_hour))
      problems.push(
        `lease ${leaseId} settled at ${[...prices].join(" and ")}, ` +
          `leased at ${lease.price_per_hour} units`,
      );
    const minutes = Math.max(...rows.map((r) => r.served_minutes ?? 0));
    const paid = releasedByLease.get(leaseId) ?? ZERO;
    if (paid !== rentalFor(price, minutes))
      problems.push(
        `lease ${leaseId} was released ${paid} units for ${minutes} min at ${price}/h ` +
          `(${rentalFor(price, minutes)} expected): paid twice or short`,
      );
    const servable = servableMinutes(lease);
    if (minutes > servable)
      problems.push(`lease ${leaseId} was paid ${minutes} min but could serve ${servable}`);
  }
  return problems;
}

/** Whole minutes from the later of the cluster's and the lease's start to its billing end. */
function servableMinutes(lease: {
  started_at: unknown;
  billed_until: unknown;
  cluster_started_at: unknown;
  ends_at: unknown;
  ended_at: unknown;
}): number {
  const ms = (v: unknown) => (v === null ? undefined : Number(v));
  const from = Math.max(ms(lease.cluster_started_at) ?? Infinity, ms(lease.started_at) ?? Infinity);
  const to = Math.min(
    ms(lease.billed_until) ?? Infinity,
    ms(lease.ends_at) ?? Infinity,
    ms(lease.ended_at) ?? Infinity,
  );
  return from === Infinity || to === Infinity ? 0 : Math.max(0, Math.floor((to - from) / 60_000));
}

/** No refund twice; one deploy charge per cluster; one extension charge per extension. */
export async function clusterProblems(db: Kysely<Database>): Promise<string[]> {
  const counts = await sql<{ cluster_id: string; kind: string; n: string | number }>`
    SELECT cluster_id, kind, COUNT(*) AS n FROM ledger_transactions
    WHERE cluster_id IS NOT NULL GROUP BY cluster_id, kind`.execute(db);
  const count = (clusterId: string, kind: string) =>
    Number(counts.rows.find((r) => r.cluster_id === clusterId && r.kind === kind)?.n ?? 0);
  const escrow = await sql<{ account: string; total: string }>`
    SELECT account, CAST(SUM(amount) AS TEXT) AS total FROM ledger_postings
    WHERE account LIKE 'escrow:%' GROUP BY account`.execute(db);
  const extended = await sql<{ cluster_id: string; n: string | number }>`
    SELECT cluster_id, COUNT(*) AS n FROM cluster_events WHERE type = 'extended'
    GROUP BY cluster_id`.execute(db);
  const clusters = await db.selectFrom("clusters").select(["id", "status"]).execute();

  const problems: string[] = [];
  for (const { id, status } of clusters) {
    if (count(id, "charge-deploy") !== 1)
      problems.push(`cluster ${id} has ${count(id, "charge-deploy")} deploy charges`);
    if (count(id, "refund") > 1)
      problems.push(`cluster ${id} was refunded ${count(id, "refund")} times`);
    const extensions = Number(extended.rows.find((r) => r.cluster_id === id)?.n ?? 0);
    if (count(id, "charge-extension") !== extensions)
      problems.push(
        `cluster ${id} has ${count(id, "charge-extension")} extension charges ` +
          `for ${extensions} extensions`,
      );
    const held = escrow.rows.find((r) => r.account === `escrow:${id}`)?.total ?? "0";
    if (FINAL.includes(status) && units(held) !== 0n)
      problems.push(`cluster ${id} ended (${status}) with ${held} units still in escrow`);
  }
  return problems;
}

/**
 * Each deploy key the driver used names the cluster its answer named (none when refused), and no
 * other; each money movement key names one ledger transaction when it succeeded, none otherwise.
 */
export async function keyProblems(
  db: Kysely<Database>,
  expected: {
    /** `<account>:<key>` as the scheduler stores it → the cluster the deploy answered, or null. */
    deploys: ReadonlyMap<string, string | null>;
    /** `api:<requestedBy>:<key>` as the wallet stores it → whether it succeeded. */
    movements: ReadonlyMap<string, boolean>;
  },
): Promise<string[]> {
  const problems: string[] = [];
  const clusters = await db.selectFrom("clusters").select(["id", "idempotency_key"]).execute();
  for (const [key, clusterId] of expected.deploys) {
    const named = clusters.filter((c) => c.idempotency_key === key).map((c) => c.id);
    const want = clusterId === null ? [] : [clusterId];
    if (named.join() !== want.join())
      problems.push(`deploy key ${key} names [${named.join()}], answered [${want.join()}]`);
  }
  const unkeyed = clusters.filter((c) => c.idempotency_key === null);
  if (unkeyed.length > 0) problems.push(`${unkeyed.length} clusters have no deploy key`);
  const movements = await db
    .selectFrom("ledger_transactions")
    .select(["idempotency_key"])
    .where("kind", "in", ["deposit", "withdrawal"])
    .execute();
  const stored = new Set(movements.map((m) => m.idempotency_key));
  for (const [key, succeeded] of expected.movements)
    if (stored.has(key) !== succeeded)
      problems.push(
        `${key} ${succeeded ? "succeeded but left no" : "was refused but left a"} transaction`,
      );
  return problems;
}

/** Ledger transactions per kind, for a run's summary. */
export async function ledgerCounts(db: Kysely<Database>): Promise<Record<string, number>> {
  const rows = await sql<{ kind: string; n: string | number }>`
    SELECT kind, COUNT(*) AS n FROM ledger_transactions GROUP BY kind ORDER BY kind`.execute(db);
  return Object.fromEntries(rows.rows.map((r) => [r.kind, Number(r.n)]));
}
