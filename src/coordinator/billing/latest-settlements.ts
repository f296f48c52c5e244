/**
 * Each lease's latest settlement (the one with the most served minutes): what a settlement pass
 * reads to know what every lease was already released.
 *
 * One statement for the whole pass, the lease ids bound as one list, one index seek per lease
 * (`ledger_transactions_lease (lease_id, served_minutes)`, backwards, first row), so a pass costs
 * the same after a lease's 600th settlement as after its first. The seek names exactly the index's
 * columns and nothing else: with a `kind` filter in it, PostgreSQL with stale statistics (a ledger
 * that grew since the last ANALYZE) read and sorted every settlement of each lease instead. Only
 * settlements record served minutes; the kind is checked on the row found.
 */
import { sql, type Kysely, type RawBuilder } from "kysely";
import type { Dialect } from "../store/database.ts";
import { listParam } from "../store/list-param.ts";
import { TransactionKind } from "./ledger-accounts.ts";
import type { Database } from "../store/schema.ts";

export interface LatestSettlementRow {
  readonly lease_id: string;
  readonly cluster_id: string | null;
  readonly account_id: string | null;
  /** The settlement's stored answer (JSON). */
  readonly response: string;
}

/** The query; exported so tests can EXPLAIN it. */
export function latestSettlementsQuery(
  dialect: Dialect,
  leaseIds: readonly string[],
): RawBuilder<LatestSettlementRow> {
  const leases = listParam([...new Set(leaseIds)]);
  const latest = (lease: RawBuilder<unknown>, columns: RawBuilder<unknown>) => sql`
    SELECT ${columns} FROM ledger_transactions x
    WHERE x.lease_id = ${lease} AND x.served_minutes IS NOT NULL
    ORDER BY x.served_minutes DESC LIMIT 1`;
  const leasesWithLatest =
    dialect === "postgres"
      ? // LATERAL: a nested loop over the leases whatever the statistics say.
        sql`json_array_elements_text(${leases}::json) AS l (id) CROSS JOIN LATERAL (${latest(
          sql.ref("l.id"),
          sql`x.lease_id, x.cluster_id, x.account_id, x.response, x.kind`,
        )}) t`
      : // CROSS JOIN: SQLite keeps the leases as the outer loop whatever the statistics say.
        sql`json_each(${leases}) AS l
          CROSS JOIN ledger_transactions t ON t.id = (${latest(sql.ref("l.value"), sql`x.id`)})`;
  return sql<LatestSettlementRow>`
    SELECT t.lease_id, t.cluster_id, t.account_id, t.response FROM ${leasesWithLatest}
    WHERE t.kind = ${TransactionKind.SETTLEMENT}`;
}

export async function latestSettlements(
  tx: Kysely<Database>,
  dialect: Dialect,
  leaseIds: readonly string[],
): Promise<LatestSettlementRow[]> {
  if (leaseIds.length === 0) return [];
  return (await latestSettlementsQuery(dialect, leaseIds).execute(tx)).rows;
}
