import { sql, type Kysely } from "kysely";
import type { Dialect } from "../database.ts";

/**
 * PostgreSQL: the ledger guard's lookups made independent of the planner's statistics, and the
 * overdraft check left to the balance cache's CHECK constraint (issue 4: a settlement pass's
 * guard work, bench/RESULTS.md session 5). Same rules, same error codes.
 *
 * 1. Probes. Sealing (postings for a recorded transaction), "a transaction has postings" and "the
 *    postings of a statement have their transaction" each look up one key per row of a statement's
 *    1,000. A ledger that grew since its last ANALYZE (a settlement pass adds 50,000 rows a minute)
 *    looks small to the planner, which then hashed a scan of the whole table for each check: up to
 *    70 ms a batch instead of 2. Each lookup is now a LATERAL subquery with LIMIT 1, which
 *    PostgreSQL runs as a nested loop of index probes whatever the statistics say; sealing probes
 *    each transaction once, not each posting.
 * 2. Overdraft. The guard summed each statement's guarded postings twice: once to look for an
 *    overdraft and once to update the cache. The cache's `CHECK (balance >= 0)` already refuses a
 *    balance below zero as the cache is updated, so the guard now updates it in a block that turns
 *    that check's failure into `LEDGER_OVERDRAFT`, naming the account (looked for only then, after
 *    the block's changes were rolled back). Balanced statements, sealing and the cache's update are
 *    as in 0012 and 0003.
 */
export async function up(db: Kysely<unknown>, dialect: Dialect): Promise<void> {
  if (dialect !== "postgres") return;
  for (const statement of probes()) await statement.execute(db);
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

function probes() {
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
        SELECT n.transaction_id INTO bad FROM (SELECT DISTINCT transaction_id FROM new_postings) n
          CROSS JOIN LATERAL (SELECT 1 FROM ledger_transactions t
                              WHERE t.id = n.transaction_id LIMIT 1) recorded
          LIMIT 1;
        IF FOUND THEN
          RAISE EXCEPTION 'LEDGER_SEALED: the transaction % is already recorded', bad.transaction_id
            USING ERRCODE = 'integrity_constraint_violation';
        END IF;
        BEGIN
          ${BALANCE_CACHE_UPSERT}
        EXCEPTION WHEN check_violation THEN
          ${OVERDRAWN} INTO bad;
          IF NOT FOUND THEN RAISE; END IF;
          RAISE EXCEPTION 'LEDGER_OVERDRAFT: % would go below zero in %', bad.account, bad.currency
            USING ERRCODE = 'check_violation';
        END;
        RETURN NULL;
      END $$`,
    sql`CREATE OR REPLACE FUNCTION ledger_transactions_balanced() RETURNS trigger LANGUAGE plpgsql AS $$
      DECLARE bad record;
      BEGIN
        SELECT n.id INTO bad FROM new_transactions n
          LEFT JOIN LATERAL (SELECT true AS found FROM ledger_postings p
                             WHERE p.transaction_id = n.id LIMIT 1) p ON true
          WHERE p.found IS NULL LIMIT 1;
        IF FOUND THEN
          RAISE EXCEPTION 'LEDGER_UNBALANCED: transaction % has no postings', bad.id
            USING ERRCODE = 'check_violation';
        END IF;
        RETURN NULL;
      END $$`,
    sql`CREATE OR REPLACE FUNCTION ledger_posting_batches_recorded() RETURNS trigger LANGUAGE plpgsql AS $$
      DECLARE bad record;
      BEGIN
        SELECT d.transaction_id INTO bad
          FROM (SELECT DISTINCT transaction_id FROM ledger_postings
                WHERE id BETWEEN NEW.first_posting_id AND NEW.last_posting_id) d
          LEFT JOIN LATERAL (SELECT true AS found FROM ledger_transactions t
                             WHERE t.id = d.transaction_id LIMIT 1) t ON true
          WHERE t.found IS NULL LIMIT 1;
        IF FOUND THEN
          RAISE EXCEPTION 'LEDGER_UNRECORDED: postings of transaction % have no transaction row',
            bad.transaction_id USING ERRCODE = 'foreign_key_violation';
        END IF;
        DELETE FROM ledger_posting_batches WHERE id = NEW.id;
        RETURN NULL;
      END $$`,
  ];
}
