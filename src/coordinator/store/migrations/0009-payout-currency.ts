import { sql, type Kysely } from "kysely";
import type { Dialect } from "../database.ts";
import { dialectTypes } from "./dialect-types.ts";

/**
 * Supplier payout currencies (issue 4 item 4).
 * - `payout_currencies`: the currency an account's earnings are paid in; no row = the currency
 *   the consumer paid (the lease's). Settlement converts through the network's exchange.
 * - `ledger_transactions.exchange_rate`: the rate a converting settlement used, `to` units per
 *   `from` unit as a decimal string ("2.000000"), indexed by nothing: the costs view groups by it.
 */
export async function up(db: Kysely<unknown>, dialect: Dialect): Promise<void> {
  const { id } = dialectTypes(dialect);
  await db.schema
    .createTable("payout_currencies")
    .addColumn("account_id", id, (c) => c.primaryKey().references("accounts.id"))
    .addColumn("currency", "text", (c) =>
      c.notNull().check(sql`currency IN ('TDM', 'USDC', 'USD')`),
    )
    .addColumn("updated_at", "bigint", (c) => c.notNull())
    .execute();
  await db.schema.alterTable("ledger_transactions").addColumn("exchange_rate", "text").execute();
}
