import { sql, type Kysely, type RawBuilder } from "kysely";
import type { Dialect } from "../database.ts";

/**
 * The double-entry ledger (DESIGN.md §4, §8.1), and the database-level guard that keeps it honest
 * whatever code writes to it.
 *
 * Tables
 * - `ledger_transactions`: one row per business operation: a unique idempotency key, its kind, a
 *   hash of the request (to tell a replay from a conflicting reuse of the key), the stored answer,
 *   indexed references (account, cluster, lease, served minutes) and JSON metadata.
 * - `ledger_postings`: the amounts. Signed 64-bit integers of the smallest unit, never zero, on a
 *   ledger account (`wallet:<acct>`, `escrow:<clu>`, `earnings:<acct>`, `treasury`, `burn`,
 *   `emission-pool`, `external:<rail>`) in a currency, with a `leg` naming what it is for.
 * - `ledger_balances`: a cache of Σ postings per guarded account (wallet, escrow, earnings) and
 *   currency, written only by the postings trigger. It exists so the overdraft guard is O(1) and,
 *   on PostgreSQL, so that two transactions debiting one account serialize on its row lock. The
 *   ledger audit recomputes every balance from the postings and counts any mismatch.
 *
 * Guard (the same rules on both databases)
 * 1. Append-only: postings and transactions refuse UPDATE and DELETE.
 * 2. Balanced: a transaction's postings sum to zero in each currency, and there are some. Postings
 *    are written first and the transaction row last, which seals it: a posting for a transaction
 *    whose row exists is refused. SQLite checks the sums when the row is inserted (a BEFORE INSERT
 *    trigger: SQLite has no deferred triggers); PostgreSQL checks them at COMMIT (a constraint
 *    trigger, DEFERRABLE INITIALLY DEFERRED). Postings whose transaction row never comes fail the
 *    deferred foreign key at COMMIT on both.
 * 3. No overdraft: a wallet, escrow or earnings balance never goes below zero (a trigger, and a
 *    CHECK constraint on the cached balance behind it). SQLite checks each posting row, so writers
 *    post credits before debits; PostgreSQL checks each INSERT statement's net change per account
 *    (a statement-level trigger over the transition table: one call per 1,000-row batch, not one
 *    per row) and seals there too.
 * 4. The cache is not editable: on PostgreSQL a direct INSERT/UPDATE/DELETE of `ledger_balances`
 *    (trigger depth 1) is refused; on SQLite every change must be chained to a newer posting of that
 *    account with exactly the amount of the change, and deletes are refused.
 * This guards against bugs and stray SQL, not against a database superuser.
 *
 * SQLite layout: postings use the rowid as id (increasing: rows are never deleted), transactions
 * and balances are WITHOUT ROWID tables; a commit then writes fewer pages.
 */
export async function up(db: Kysely<unknown>, dialect: Dialect): Promise<void> {
  const statements = dialect === "postgres" ? postgres() : sqlite();
  for (const statement of statements) await statement.execute(db);
}

const CURRENCIES = `('TDM', 'USDC', 'USD')`;
// Account names are case-sensitive on both (SQLite's LIKE is not, so SQLite uses GLOB).
const SQLITE_ACCOUNT_NAME =
  "(account IN ('treasury', 'burn', 'emission-pool') OR account GLOB 'wallet:acct_*'" +
  " OR account GLOB 'escrow:clu_*' OR account GLOB 'earnings:acct_*' OR account GLOB 'external:?*')";
const POSTGRES_ACCOUNT_NAME =
  "(account IN ('treasury', 'burn', 'emission-pool') OR account ~ '^(wallet|earnings):acct_'" +
  " OR account ~ '^escrow:clu_' OR account ~ '^external:.')";
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

function sqlite(): RawBuilder<unknown>[] {
  return [
    sql`CREATE TABLE ledger_transactions (
      id TEXT PRIMARY KEY,
      idempotency_key TEXT NOT NULL UNIQUE,
      kind TEXT NOT NULL,
      request_hash TEXT NOT NULL,
      account_id TEXT,
      cluster_id TEXT,
      lease_id TEXT,
      served_minutes INTEGER,
      metadata TEXT NOT NULL,
      response TEXT NOT NULL,
      created_at INTEGER NOT NULL
    ) WITHOUT ROWID`,
    sql`CREATE INDEX ledger_transactions_cluster ON ledger_transactions (cluster_id, kind)
      WHERE cluster_id IS NOT NULL`,
    sql`CREATE INDEX ledger_transactions_lease ON ledger_transactions (lease_id, served_minutes)
      WHERE lease_id IS NOT NULL`,
    sql`CREATE TABLE ledger_postings (
      id INTEGER PRIMARY KEY,
      transaction_id TEXT NOT NULL
        REFERENCES ledger_transactions (id) DEFERRABLE INITIALLY DEFERRED,
      account TEXT NOT NULL CHECK ${sql.raw(SQLITE_ACCOUNT_NAME)},
      currency TEXT NOT NULL CHECK (currency IN ${sql.raw(CURRENCIES)}),
      amount INTEGER NOT NULL CHECK (typeof(amount) = 'integer' AND amount <> 0),
      leg TEXT NOT NULL
    )`,
    sql`CREATE INDEX ledger_postings_transaction ON ledger_postings (transaction_id, currency)`,
    sql`CREATE INDEX ledger_postings_account ON ledger_postings (account, currency, transaction_id)`,
    sql`CREATE TABLE ledger_balances (
      account TEXT NOT NULL,
      currency TEXT NOT NULL,
      balance INTEGER NOT NULL
        CONSTRAINT ledger_balances_non_negative CHECK (typeof(balance) = 'integer' AND balance >= 0),
      last_posting_id INTEGER NOT NULL,
      PRIMARY KEY (account, currency)
    ) WITHOUT ROWID`,

    // 1. Append-only.
    ...["UPDATE", "DELETE"].flatMap((op) =>
      ["ledger_postings", "ledger_transactions"].map(
        (table) =>
          sql`CREATE TRIGGER ${sql.raw(`${table}_no_${op.toLowerCase()}`)} BEFORE ${sql.raw(op)} ON ${sql.raw(table)}
          BEGIN SELECT RAISE(ABORT, 'LEDGER_APPEND_ONLY: ledger rows are never changed or deleted'); END`,
      ),
    ),
    // 2. Sealed and balanced.
    sql`CREATE TRIGGER ledger_postings_sealed BEFORE INSERT ON ledger_postings
      WHEN EXISTS (SELECT 1 FROM ledger_transactions WHERE id = NEW.transaction_id)
      BEGIN SELECT RAISE(ABORT, 'LEDGER_SEALED: the transaction is already recorded'); END`,
    sql`CREATE TRIGGER ledger_transactions_balanced BEFORE INSERT ON ledger_transactions
      WHEN NOT EXISTS (SELECT 1 FROM ledger_postings WHERE transaction_id = NEW.id)
        OR EXISTS (SELECT 1 FROM ledger_postings WHERE transaction_id = NEW.id
                   GROUP BY currency HAVING SUM(amount) <> 0)
      BEGIN SELECT RAISE(ABORT, 'LEDGER_UNBALANCED: postings must sum to zero per currency'); END`,
    // 3. No overdraft, through the cached balance.
    sql`CREATE TRIGGER ledger_postings_overdraft BEFORE INSERT ON ledger_postings
      WHEN NEW.amount < 0 AND ${sql.raw(GUARDED("NEW.account"))}
        AND COALESCE((SELECT balance FROM ledger_balances
                      WHERE account = NEW.account AND currency = NEW.currency), 0) + NEW.amount < 0
      BEGIN SELECT RAISE(ABORT, 'LEDGER_OVERDRAFT: the balance would go below zero'); END`,
    // A credit may create the row; a debit finds it (the overdraft trigger saw to that). An upsert
    // cannot debit: the CHECK runs on the would-be new row before the conflict is seen.
    sql`CREATE TRIGGER ledger_postings_credit AFTER INSERT ON ledger_postings
      WHEN NEW.amount > 0 AND ${sql.raw(GUARDED("NEW.account"))}
      BEGIN
        INSERT INTO ledger_balances (account, currency, balance, last_posting_id)
        VALUES (NEW.account, NEW.currency, NEW.amount, NEW.id)
        ON CONFLICT (account, currency) DO UPDATE
          SET balance = balance + excluded.balance, last_posting_id = excluded.last_posting_id;
      END`,
    sql`CREATE TRIGGER ledger_postings_debit AFTER INSERT ON ledger_postings
      WHEN NEW.amount < 0 AND ${sql.raw(GUARDED("NEW.account"))}
      BEGIN
        UPDATE ledger_balances SET balance = balance + NEW.amount, last_posting_id = NEW.id
        WHERE account = NEW.account AND currency = NEW.currency;
      END`,
    // 4. The cache changes only with a posting.
    sql`CREATE TRIGGER ledger_balances_insert BEFORE INSERT ON ledger_balances
      WHEN NOT EXISTS (SELECT 1 FROM ledger_postings p WHERE p.id = NEW.last_posting_id
        AND p.account = NEW.account AND p.currency = NEW.currency AND p.amount = NEW.balance)
      BEGIN SELECT RAISE(ABORT, 'LEDGER_BALANCE_DERIVED: balances change only through postings'); END`,
    sql`CREATE TRIGGER ledger_balances_update BEFORE UPDATE ON ledger_balances
      WHEN NEW.account IS NOT OLD.account OR NEW.currency IS NOT OLD.currency
        OR NEW.last_posting_id <= OLD.last_posting_id
        OR NOT EXISTS (SELECT 1 FROM ledger_postings p WHERE p.id = NEW.last_posting_id
          AND p.account = NEW.account AND p.currency = NEW.currency
          AND p.amount = NEW.balance - OLD.balance)
      BEGIN SELECT RAISE(ABORT, 'LEDGER_BALANCE_DERIVED: balances change only through postings'); END`,
    sql`CREATE TRIGGER ledger_balances_delete BEFORE DELETE ON ledger_balances
      BEGIN SELECT RAISE(ABORT, 'LEDGER_BALANCE_DERIVED: balances change only through postings'); END`,
  ];
}

function postgres(): RawBuilder<unknown>[] {
  return [
    sql`CREATE TABLE ledger_transactions (
      id text COLLATE "C" PRIMARY KEY,
      idempotency_key text COLLATE "C" NOT NULL UNIQUE,
      kind text NOT NULL,
      request_hash text NOT NULL,
      account_id text COLLATE "C",
      cluster_id text COLLATE "C",
      lease_id text COLLATE "C",
      served_minutes integer,
      metadata text NOT NULL,
      response text NOT NULL,
      created_at bigint NOT NULL
    )`,
    sql`CREATE INDEX ledger_transactions_cluster ON ledger_transactions (cluster_id, kind)
      WHERE cluster_id IS NOT NULL`,
    sql`CREATE INDEX ledger_transactions_lease ON ledger_transactions (lease_id, served_minutes)
      WHERE lease_id IS NOT NULL`,
    sql`CREATE TABLE ledger_postings (
      id bigserial PRIMARY KEY,
      transaction_id text COLLATE "C" NOT NULL
        REFERENCES ledger_transactions (id) DEFERRABLE INITIALLY DEFERRED,
      account text COLLATE "C" NOT NULL CHECK ${sql.raw(POSTGRES_ACCOUNT_NAME)},
      currency text NOT NULL CHECK (currency IN ${sql.raw(CURRENCIES)}),
      amount bigint NOT NULL CHECK (amount <> 0),
      leg text NOT NULL
    )`,
    sql`CREATE INDEX ledger_postings_transaction ON ledger_postings (transaction_id, currency)`,
    sql`CREATE INDEX ledger_postings_account ON ledger_postings (account, currency, transaction_id)`,
    sql`CREATE TABLE ledger_balances (
      account text COLLATE "C" NOT NULL,
      currency text NOT NULL,
      balance bigint NOT NULL CONSTRAINT ledger_balances_non_negative CHECK (balance >= 0),
      last_posting_id bigint NOT NULL,
      PRIMARY KEY (account, currency)
    )`,

    // 1. Append-only.
    sql`CREATE FUNCTION ledger_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
      BEGIN
        RAISE EXCEPTION 'LEDGER_APPEND_ONLY: ledger rows are never changed or deleted'
          USING ERRCODE = 'integrity_constraint_violation';
      END $$`,
    sql`CREATE TRIGGER ledger_postings_append_only BEFORE UPDATE OR DELETE ON ledger_postings
      FOR EACH ROW EXECUTE FUNCTION ledger_append_only()`,
    sql`CREATE TRIGGER ledger_transactions_append_only BEFORE UPDATE OR DELETE ON ledger_transactions
      FOR EACH ROW EXECUTE FUNCTION ledger_append_only()`,
    sql`CREATE TRIGGER ledger_postings_no_truncate BEFORE TRUNCATE ON ledger_postings
      FOR EACH STATEMENT EXECUTE FUNCTION ledger_append_only()`,
    sql`CREATE TRIGGER ledger_transactions_no_truncate BEFORE TRUNCATE ON ledger_transactions
      FOR EACH STATEMENT EXECUTE FUNCTION ledger_append_only()`,

    // 2. Balanced, at COMMIT (sealing is in the postings statement trigger below).
    sql`CREATE FUNCTION ledger_transactions_balanced() RETURNS trigger LANGUAGE plpgsql AS $$
      DECLARE unbalanced text;
      BEGIN
        IF NOT EXISTS (SELECT 1 FROM ledger_postings WHERE transaction_id = NEW.id) THEN
          RAISE EXCEPTION 'LEDGER_UNBALANCED: transaction % has no postings', NEW.id
            USING ERRCODE = 'check_violation';
        END IF;
        SELECT currency INTO unbalanced FROM ledger_postings WHERE transaction_id = NEW.id
          GROUP BY currency HAVING SUM(amount) <> 0 LIMIT 1;
        IF FOUND THEN
          RAISE EXCEPTION 'LEDGER_UNBALANCED: transaction % does not sum to zero in %', NEW.id, unbalanced
            USING ERRCODE = 'check_violation';
        END IF;
        RETURN NULL;
      END $$`,
    sql`CREATE CONSTRAINT TRIGGER ledger_transactions_balanced AFTER INSERT ON ledger_transactions
      DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION ledger_transactions_balanced()`,

    // 2'. Sealed, and 3. no overdraft: once per INSERT statement, over all its rows at once (a
    // transition table), so a settlement pass of 10,000 leases costs 10 trigger calls, not 40,000.
    // The net change per account decides, so the order of rows within a statement does not matter.
    sql`CREATE FUNCTION ledger_postings_guard() RETURNS trigger LANGUAGE plpgsql AS $$
      DECLARE bad record;
      BEGIN
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
    sql`CREATE TRIGGER ledger_postings_guard AFTER INSERT ON ledger_postings
      REFERENCING NEW TABLE AS new_postings
      FOR EACH STATEMENT EXECUTE FUNCTION ledger_postings_guard()`,

    // 4. The cache changes only from the postings trigger.
    sql`CREATE FUNCTION ledger_balances_derived() RETURNS trigger LANGUAGE plpgsql AS $$
      BEGIN
        IF pg_trigger_depth() < 2 THEN
          RAISE EXCEPTION 'LEDGER_BALANCE_DERIVED: balances change only through postings'
            USING ERRCODE = 'integrity_constraint_violation';
        END IF;
        IF TG_OP = 'DELETE' THEN RETURN OLD; END IF;
        RETURN NEW;
      END $$`,
    sql`CREATE TRIGGER ledger_balances_derived BEFORE INSERT OR UPDATE OR DELETE ON ledger_balances
      FOR EACH ROW EXECUTE FUNCTION ledger_balances_derived()`,
    sql`CREATE TRIGGER ledger_balances_no_truncate BEFORE TRUNCATE ON ledger_balances
      FOR EACH STATEMENT EXECUTE FUNCTION ledger_append_only()`,
  ];
}
