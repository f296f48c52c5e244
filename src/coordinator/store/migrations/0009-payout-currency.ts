import { sql, type Kysely } from "kysely";
import type { Dialect } from "../database.ts";
import { dialectTypes } from "./dialect-types.ts";

/**
 * Supplier payout currencies (issue 4 item 4).
 * - `payout_currencies`: the currency an account's earnings are paid in; no row = the currency
 *   the consumer paid (the lease's). Settlement converts through the network's exchange.
 * - `ledger_transactions.exchange_rate`: the rate a converting settlement used, `to` units per
 *   `from` unit as a decimal string ("2.000000"), indexed by nothing: the costs view groups by it.
 * - PostgreSQL: the balance check (guard rule 2) moves from a deferred row-level constraint
 *   trigger (10,000 plpgsql calls at COMMIT for a settlement pass) to a statement-level trigger
 *   over the inserted transaction rows (one call per INSERT statement). It may run at insert time,
 *   as SQLite's does: postings are written before their transaction row, which seals it (a later
 *   posting is refused), so the row's postings are complete when it arrives. Postings whose
 *   transaction row never comes still fail the deferred foreign key at COMMIT.
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
  if (dialect === "postgres")
    for (const statement of balancedPerStatement()) await statement.execute(db);
}

function balancedPerStatement() {
  return [
    sql`DROP TRIGGER ledger_transactions_balanced ON ledger_transactions`,
    sql`DROP FUNCTION ledger_transactions_balanced()`,
    sql`CREATE FUNCTION ledger_transactions_balanced() RETURNS trigger LANGUAGE plpgsql AS $$
      DECLARE bad record;
      BEGIN
        SELECT n.id INTO bad FROM new_transactions n
          WHERE NOT EXISTS (SELECT 1 FROM ledger_postings p WHERE p.transaction_id = n.id) LIMIT 1;
        IF FOUND THEN
          RAISE EXCEPTION 'LEDGER_UNBALANCED: transaction % has no postings', bad.id
            USING ERRCODE = 'check_violation';
        END IF;
        SELECT p.transaction_id, p.currency INTO bad
          FROM new_transactions n JOIN ledger_postings p ON p.transaction_id = n.id
          GROUP BY p.transaction_id, p.currency HAVING SUM(p.amount) <> 0 LIMIT 1;
        IF FOUND THEN
          RAISE EXCEPTION 'LEDGER_UNBALANCED: transaction % does not sum to zero in %',
            bad.transaction_id, bad.currency USING ERRCODE = 'check_violation';
        END IF;
        RETURN NULL;
      END $$`,
    sql`CREATE TRIGGER ledger_transactions_balanced AFTER INSERT ON ledger_transactions
      REFERENCING NEW TABLE AS new_transactions
      FOR EACH STATEMENT EXECUTE FUNCTION ledger_transactions_balanced()`,
  ];
}
