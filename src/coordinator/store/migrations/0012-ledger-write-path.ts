import { sql, type Kysely } from "kysely";
import type { Dialect } from "../database.ts";

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

// The guard's SQL as 0003-ledger wrote it, restated here so that this migration stays as it ran.
/** SQL: whether `column` names a guarded account (wallet, escrow, earnings). */
const GUARDED = (column: string) =>
  `(substr(${column}, 1, 7) = 'wallet:' OR substr(${column}, 1, 7) = 'escrow:' OR substr(${column}, 1, 9) = 'earnings:')`;

/**
 * plpgsql, PostgreSQL's postings guard (a statement trigger over `new_postings`): the first guarded
 * account and currency whose balance the statement would take below zero, if any.
 */
const OVERDRAWN = sql.raw(`SELECT d.account, d.currency
          FROM (SELECT account, currency, SUM(amount) AS delta FROM new_postings
                WHERE ${GUARDED("account")} GROUP BY account, currency) d
          LEFT JOIN ledger_balances b ON b.account = d.account AND b.currency = d.currency
          WHERE COALESCE(b.balance, 0) + d.delta < 0 LIMIT 1`);

/**
 * plpgsql, the same trigger: adds the statement's net change per guarded account to the cached
 * balances. One statement, one snapshot: rows the UPDATE did not see are inserted, or, when another
 * transaction created them meanwhile, updated by ON CONFLICT. No delta is lost or doubled.
 */
const BALANCE_CACHE_UPSERT = sql.raw(`WITH d AS (
          SELECT account, currency, SUM(amount) AS delta, MAX(id) AS last FROM new_postings
          WHERE ${GUARDED("account")} GROUP BY account, currency
        ), u AS (
          UPDATE ledger_balances b SET balance = b.balance + d.delta, last_posting_id = d.last
          FROM d WHERE b.account = d.account AND b.currency = d.currency
          RETURNING b.account, b.currency
        )
        INSERT INTO ledger_balances AS b (account, currency, balance, last_posting_id)
          SELECT d.account, d.currency, d.delta, d.last FROM d
          WHERE NOT EXISTS (SELECT 1 FROM u WHERE u.account = d.account AND u.currency = d.currency)
          ORDER BY d.account, d.currency
        ON CONFLICT (account, currency) DO UPDATE
          SET balance = b.balance + EXCLUDED.balance, last_posting_id = EXCLUDED.last_posting_id;`);

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
