import { sql, type Kysely } from "kysely";
import type { Dialect } from "../database.ts";
import { BALANCE_CACHE_UPSERT, OVERDRAWN } from "./0003-ledger.ts";

/**
 * A cheaper write path for the ledger (issue 4: a settlement pass writes 10,000 transactions and
 * 40,000 postings; bench/RESULTS.md "Ledger", 2026-11-25 session 4).
 *
 * 1. The account index leaves out `treasury` and `burn`. Nearly every transaction posts to one of
 *    them (a settlement to both: half of a pass's postings), and nothing reads them by account:
 *    they are only ever summed whole, by the audit, which scans. The index serves wallet history
 *    and the audit's per-balance probe, whose queries name the same predicate (SQLite uses a
 *    partial index only when the query repeats its WHERE: billing/ledger-accounts.ts
 *    `indexedByAccount`).
 * 2. PostgreSQL checks a transaction's balance over the postings statement instead of the
 *    transaction rows: each INSERT into `ledger_postings` must sum to zero per transaction and
 *    currency (one aggregate over the statement's transition table, in memory), so postings of one
 *    transaction come in one statement — the ledger always wrote them so. The statement trigger on
 *    `ledger_transactions` is left checking that each new row has postings (one index probe per
 *    row instead of reading and summing all its postings). Sealing, the overdraft check and the
 *    deferred foreign key are unchanged; balanced statements sum to balanced transactions, so guard
 *    rule 2 of 0003-ledger holds as before. SQLite keeps its row triggers: it has no statement
 *    triggers, and its transaction-row check already reads only that transaction's postings.
 */
export async function up(db: Kysely<unknown>, dialect: Dialect): Promise<void> {
  await sql`DROP INDEX ledger_postings_account`.execute(db);
  await sql`CREATE INDEX ledger_postings_account ON ledger_postings (account, currency, transaction_id)
    WHERE account NOT IN ('treasury', 'burn')`.execute(db);
  if (dialect === "postgres")
    for (const statement of balancedPerPostingsStatement()) await statement.execute(db);
}

function balancedPerPostingsStatement() {
  return [
    sql`CREATE OR REPLACE FUNCTION ledger_postings_guard() RETURNS trigger LANGUAGE plpgsql AS $$
      DECLARE bad record;
      BEGIN
        SELECT n.transaction_id, n.currency INTO bad FROM new_postings n
          GROUP BY n.transaction_id, n.currency HAVING SUM(n.amount) <> 0 LIMIT 1;
        IF FOUND THEN
          RAISE EXCEPTION 'LEDGER_UNBALANCED: transaction % does not sum to zero in % (its postings must come in one statement)',
            bad.transaction_id, bad.currency USING ERRCODE = 'check_violation';
        END IF;
        SELECT n.transaction_id INTO bad FROM new_postings n
          JOIN ledger_transactions t ON t.id = n.transaction_id LIMIT 1;
        IF FOUND THEN
          RAISE EXCEPTION 'LEDGER_SEALED: the transaction % is already recorded', bad.transaction_id
            USING ERRCODE = 'integrity_constraint_violation';
        END IF;
        ${OVERDRAWN} INTO bad;
        IF FOUND THEN
          RAISE EXCEPTION 'LEDGER_OVERDRAFT: % would go below zero in %', bad.account, bad.currency
            USING ERRCODE = 'check_violation';
        END IF;
        ${BALANCE_CACHE_UPSERT}
        RETURN NULL;
      END $$`,
    sql`CREATE OR REPLACE FUNCTION ledger_transactions_balanced() RETURNS trigger LANGUAGE plpgsql AS $$
      DECLARE bad record;
      BEGIN
        SELECT n.id INTO bad FROM new_transactions n
          WHERE NOT EXISTS (SELECT 1 FROM ledger_postings p WHERE p.transaction_id = n.id) LIMIT 1;
        IF FOUND THEN
          RAISE EXCEPTION 'LEDGER_UNBALANCED: transaction % has no postings', bad.id
            USING ERRCODE = 'check_violation';
        END IF;
        RETURN NULL;
      END $$`,
  ];
}
