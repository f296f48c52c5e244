/**
 * The posting engine: writes one balanced ledger transaction inside a caller's DB transaction, and
 * the locks and reads every money operation needs. Business rules live in `billing.ts` and
 * `wallet.ts`; the database's own guard (migration 0003-ledger) backs every rule checked here.
 *
 * Concurrency. SQLite has one writer and Kysely runs a transaction on its one connection, so
 * operations are serial. PostgreSQL runs READ COMMITTED with explicit locks, always in this order:
 * 1. `pg_advisory_xact_lock` on the idempotency key: two requests with one key run one after the
 *    other, and the second finds the first's row and answers it;
 * 2. `SELECT … FOR UPDATE` on the cached balance rows of every guarded account the operation
 *    touches, sorted by name: two withdrawals from one wallet serialize here and the second sees
 *    the first's debit; a fixed order means no deadlock between two operations;
 * then the balance check, then the writes (credits first, then debits).
 * A balance row that does not exist yet is a zero balance: nothing can be debited from it, and
 * the first credit creates it.
 */
import { hash } from "node:crypto";
import { CompiledQuery, sql, type Kysely } from "kysely";
import { ErrorCode, TandemError } from "../../core/errors.ts";
import { ZERO, units, type Currency, type Money } from "../../core/money.ts";
import { IdPrefix, monotonicIds } from "../../protocol/ids.ts";
import type { Dialect } from "../store/database.ts";
import { listParam } from "../store/list-param.ts";
import { isUniqueViolation } from "../store/sql-errors.ts";
import { runInTransaction, type Tx } from "../store/transaction.ts";
import type { Database } from "../store/schema.ts";
import {
  isGuarded,
  type LedgerAccount,
  type Leg,
  type TransactionKind,
} from "./ledger-accounts.ts";

/** A Kysely handle: the database itself or an open transaction (`tx`). */
export type { Tx } from "../store/transaction.ts";

export interface PostingInput {
  readonly account: LedgerAccount;
  readonly currency: Currency;
  /** Signed: positive credits the account, negative debits it. Zero postings are dropped. */
  readonly amount: Money;
  readonly leg: Leg;
}

export interface RecordInput {
  readonly idempotencyKey: string;
  readonly kind: TransactionKind;
  readonly requestHash: string;
  readonly accountId?: string | undefined;
  readonly clusterId?: string | undefined;
  readonly leaseId?: string | undefined;
  readonly servedMinutes?: number | undefined;
  /** A conversion's rate (`formatRate`), for the costs view; see migration 0009. */
  readonly exchangeRate?: string | undefined;
  readonly metadata: Record<string, unknown>;
  /** The answer to store for replays; built from the new transaction's id. */
  readonly response: (transactionId: string) => unknown;
  readonly postings: readonly PostingInput[];
  readonly nowMs: number;
}

export interface StoredTransaction {
  readonly id: string;
  readonly requestHash: string;
  readonly response: unknown;
}

/** A stable hash of a request: the same fields in any order hash the same; bigints as decimals. */
export function requestHash(kind: TransactionKind, request: Record<string, unknown>): string {
  return hash("sha256", stableJson({ kind, ...request }), "hex");
}

/** JSON with object keys sorted and undefined fields left out; a settlement pass writes 10,000. */
function stableJson(value: unknown): string {
  if (typeof value === "bigint") return `"${value}"`;
  if (Array.isArray(value)) return `[${value.map(stableJson).join(",")}]`;
  if (value !== null && typeof value === "object") {
    const object = value as Record<string, unknown>;
    let out = "";
    for (const key of Object.keys(object).sort()) {
      const field = object[key];
      if (field === undefined) continue;
      out += `${out === "" ? "" : ","}${JSON.stringify(key)}:${stableJson(field)}`;
    }
    return `{${out}}`;
  }
  return JSON.stringify(value) ?? "null";
}

export class Ledger {
  private readonly insertSql = new Map<string, string>();
  /** Transaction ids in the order they are written: their indexes grow at the right edge. */
  private readonly transactionId = monotonicIds(IdPrefix.transaction);

  constructor(readonly dialect: Dialect) {}

  /** Serializes operations that share an idempotency key (PostgreSQL; SQLite is serial). */
  async lockKey(tx: Tx, key: string): Promise<void> {
    if (this.dialect !== "postgres") return;
    await sql`SELECT pg_advisory_xact_lock(hashtextextended(${key}, 0))`.execute(tx);
  }

  async findByKey(tx: Tx, key: string): Promise<StoredTransaction | undefined> {
    const row = await tx
      .selectFrom("ledger_transactions")
      .select(["id", "request_hash", "response"])
      .where("idempotency_key", "=", key)
      .executeTakeFirst();
    return row === undefined
      ? undefined
      : {
          id: row.id,
          requestHash: row.request_hash,
          response: JSON.parse(row.response) as unknown,
        };
  }

  /**
   * The stored answer for `key`, or undefined when the key is new. The same key with another
   * request is `IDEMPOTENCY_CONFLICT`. Call after `lockKey`.
   */
  async replay(tx: Tx, key: string, hash: string): Promise<StoredTransaction | undefined> {
    const existing = await this.findByKey(tx, key);
    if (existing !== undefined && existing.requestHash !== hash) {
      throw new TandemError(
        ErrorCode.IDEMPOTENCY_CONFLICT,
        "this idempotency key was already used for a different request",
        { details: { transactionId: existing.id } },
      );
    }
    return existing;
  }

  /** The stored transactions among `keys` (idempotency keys), by key: one statement. */
  async findByKeys(tx: Tx, keys: readonly string[]): Promise<Map<string, StoredTransaction>> {
    const found = new Map<string, StoredTransaction>();
    if (keys.length === 0) return found;
    const list = listParam(keys);
    const matching =
      this.dialect === "postgres"
        ? // ARRAY(…): one array for an index scan, whatever the planner guesses of the JSON.
          sql`idempotency_key = ANY(ARRAY(SELECT json_array_elements_text(${list}::json)))`
        : sql`idempotency_key IN (SELECT value FROM json_each(${list}))`;
    const { rows } = await sql<{
      id: string;
      idempotency_key: string;
      request_hash: string;
      response: string;
    }>`SELECT id, idempotency_key, request_hash, response FROM ledger_transactions
      WHERE ${matching}`.execute(tx);
    for (const row of rows)
      found.set(row.idempotency_key, {
        id: row.id,
        requestHash: row.request_hash,
        response: JSON.parse(row.response) as unknown,
      });
    return found;
  }

  /** Locks the balance rows of the guarded accounts among `accounts`, without reading them. */
  async lock(tx: Tx, currency: Currency, accounts: readonly LedgerAccount[]): Promise<void> {
    if (this.dialect === "postgres") await this.lockBalances(tx, currency, accounts);
  }

  /**
   * Locks the balance rows of the guarded accounts among `accounts` (PostgreSQL, sorted) and
   * answers every guarded account's balance in `currency` (zero when it has none yet).
   */
  async lockBalances(
    tx: Tx,
    currency: Currency,
    accounts: readonly LedgerAccount[],
  ): Promise<Map<LedgerAccount, Money>> {
    const guarded = [...new Set(accounts.filter(isGuarded))].sort();
    const balances = new Map<LedgerAccount, Money>(guarded.map((a) => [a, ZERO]));
    if (guarded.length === 0) return balances;
    let query = tx
      .selectFrom("ledger_balances")
      .select(["account", sql<string>`CAST(balance AS TEXT)`.as("balance")])
      .where("currency", "=", currency)
      .where("account", "in", guarded)
      .orderBy("account");
    if (this.dialect === "postgres") query = query.forUpdate();
    for (const row of await query.execute())
      balances.set(row.account as LedgerAccount, units(row.balance));
    return balances;
  }

  /**
   * Writes one balanced transaction: postings (credits first), then the transaction row, which
   * seals it. Answers the new transaction's id and its stored answer.
   */
  async record(tx: Tx, input: RecordInput): Promise<{ id: string; response: unknown }> {
    const id = this.transactionId(input.nowMs);
    await this.insertPostings(tx, [{ transactionId: id, postings: input.postings }]);
    const response = input.response(id);
    await this.insertTransactions(tx, [transactionValues(id, input, response)]);
    return { id, response };
  }

  /**
   * Many transactions at once (a settlement pass), in batches of whole transactions: each batch is
   * one postings insert, then one transactions insert. On PostgreSQL a batch is sent without
   * waiting for the one before (the connection queues them in order) and the event loop gets a
   * turn between batches, so the server writes batch k while this process builds batch k + 1; the
   * first failure aborts the DB transaction and is the one thrown.
   */
  async recordMany(
    tx: Tx,
    inputs: readonly RecordInput[],
  ): Promise<Array<{ id: string; response: unknown }>> {
    const results: Array<{ id: string; response: unknown }> = [];
    const sent: Array<Promise<void>> = [];
    for (let start = 0; start < inputs.length; start += RECORD_BATCH) {
      const batch = inputs.slice(start, start + RECORD_BATCH);
      const ids = batch.map((input) => this.transactionId(input.nowMs));
      const postings = batch.map((input, i) => ({
        transactionId: ids[i]!,
        postings: input.postings,
      }));
      const rows = batch.map((input, i) => {
        const response = input.response(ids[i]!);
        results.push({ id: ids[i]!, response });
        return transactionValues(ids[i]!, input, response);
      });
      if (this.dialect !== "postgres") {
        await this.insertPostings(tx, postings);
        await this.insertTransactions(tx, rows);
        continue;
      }
      // A batch's transaction rows follow its postings; the next batch may go out in between.
      const written = this.insertPostings(tx, postings).then(() =>
        this.insertTransactions(tx, rows),
      );
      // A rejection is thrown by the Promise.all below; until then it counts as handled.
      written.catch(() => undefined);
      sent.push(written);
      await new Promise((resolve) => setImmediate(resolve));
    }
    await Promise.all(sent);
    return results;
  }

  /**
   * On SQLite, credits go before debits (its guard checks each row: no balance dips below zero
   * between postings), each sorted by account so balance rows are created in one order; the
   * PostgreSQL guard checks each statement's net change per account, so order does not matter.
   */
  private async insertPostings(
    tx: Tx,
    batch: ReadonlyArray<{ transactionId: string; postings: readonly PostingInput[] }>,
  ): Promise<void> {
    for (const { transactionId, postings } of batch) checkBalanced(transactionId, postings);
    const postings = batch.flatMap(({ transactionId, postings }) =>
      postings.filter((p) => p.amount !== 0n).map((p) => ({ transactionId, ...p })),
    );
    const rows = (this.dialect === "postgres" ? postings : creditsFirst(postings)).map(
      (p): unknown[] => [p.transactionId, p.account, p.currency, p.amount, p.leg],
    );
    await this.insertRows(tx, "ledger_postings", rows);
  }

  private insertTransactions(tx: Tx, rows: ReadonlyArray<readonly unknown[]>): Promise<void> {
    return this.insertRows(tx, "ledger_transactions", rows);
  }

  /**
   * Inserts rows as plain SQL text, skipping Kysely's query builder, whose per-value work
   * dominated bulk inserts (values stay bound). PostgreSQL gets one JSON array per column
   * (`listParam`) and zips them with `ROWS FROM`: one statement and a handful of parameters
   * whatever the row count. SQLite gets multi-row VALUES of a few fixed sizes, each prepared once
   * and cached.
   */
  private async insertRows(
    tx: Tx,
    table: LedgerTable,
    rows: ReadonlyArray<readonly unknown[]>,
  ): Promise<void> {
    if (rows.length === 0) return;
    const columns = COLUMNS[table];
    if (this.dialect === "postgres") {
      const lists = columns.map((_, c) => listParam(rows.map((row) => jsonValue(row[c]))));
      await tx.executeQuery(CompiledQuery.raw(ROWS_FROM_INSERT[table], lists));
      return;
    }
    for (const chunk of shapedChunks(rows, SQLITE_ROWS_PER_INSERT[table])) {
      const key = `${table}:${chunk.length}`;
      let text = this.insertSql.get(key);
      if (text === undefined) {
        const tuple = `(${columns.map(() => "?").join(", ")})`;
        text = `INSERT INTO ${table} (${columns.join(", ")}) VALUES ${chunk.map(() => tuple).join(", ")}`;
        this.insertSql.set(key, text);
      }
      await tx.executeQuery(CompiledQuery.raw(text, chunk.flat()));
    }
  }
}

/** Transactions per batch in `recordMany`. */
const RECORD_BATCH = 1000;

type LedgerTable = "ledger_postings" | "ledger_transactions";

/** Each ledger table's inserted columns, with their PostgreSQL types (cast from JSON text). */
const COLUMN_TYPES = {
  ledger_postings: {
    transaction_id: "text",
    account: "text",
    currency: "text",
    amount: "bigint",
    leg: "text",
  },
  ledger_transactions: {
    id: "text",
    idempotency_key: "text",
    kind: "text",
    request_hash: "text",
    account_id: "text",
    cluster_id: "text",
    lease_id: "text",
    served_minutes: "integer",
    metadata: "text",
    response: "text",
    created_at: "bigint",
    exchange_rate: "text",
  },
} as const satisfies Record<LedgerTable, Record<string, string>>;

const COLUMNS = {
  ledger_postings: Object.keys(COLUMN_TYPES.ledger_postings),
  ledger_transactions: Object.keys(COLUMN_TYPES.ledger_transactions),
} satisfies Record<LedgerTable, string[]>;

/** SQLite binds at most 32,766 values per statement. */
const SQLITE_ROWS_PER_INSERT = { ledger_postings: 1024, ledger_transactions: 512 } as const;

/** A ledger value as a JSON array element: bigints as decimal strings (cast back in SQL). */
function jsonValue(value: unknown): string | number | null {
  if (value === null || value === undefined) return null;
  if (typeof value === "string" || typeof value === "number") return value;
  if (typeof value === "bigint") return value.toString();
  throw new TandemError(ErrorCode.INTERNAL, `unexpected ${typeof value} in a ledger row`);
}

/** `INSERT … SELECT … FROM ROWS FROM (json_array_elements_text($1::json), …)`, one list a column. */
function rowsFromInsert(table: LedgerTable): string {
  const types = Object.values(COLUMN_TYPES[table]);
  const lists = types.map((_, i) => `json_array_elements_text($${i + 1}::json)`).join(", ");
  const values = COLUMNS[table].map((column, i) =>
    types[i] === "text" ? column : `${column}::${types[i]}`,
  );
  return (
    `INSERT INTO ${table} (${COLUMNS[table].join(", ")}) SELECT ${values.join(", ")}` +
    ` FROM ROWS FROM (${lists}) AS r (${COLUMNS[table].join(", ")})`
  );
}

const ROWS_FROM_INSERT = {
  ledger_postings: rowsFromInsert("ledger_postings"),
  ledger_transactions: rowsFromInsert("ledger_transactions"),
} satisfies Record<LedgerTable, string>;

function transactionValues(id: string, input: RecordInput, response: unknown): unknown[] {
  return [
    id,
    input.idempotencyKey,
    input.kind,
    input.requestHash,
    input.accountId ?? null,
    input.clusterId ?? null,
    input.leaseId ?? null,
    input.servedMinutes ?? null,
    JSON.stringify(input.metadata),
    JSON.stringify(response),
    input.nowMs,
    input.exchangeRate ?? null,
  ];
}

/** Credits before debits, each sorted by account: across a whole batch, so balance rows are created in one order. */
function creditsFirst<P extends PostingInput>(postings: readonly P[]): P[] {
  const byAccount = (a: P, b: P) => (a.account < b.account ? -1 : a.account > b.account ? 1 : 0);
  return [
    ...postings.filter((p) => p.amount > 0n).sort(byAccount),
    ...postings.filter((p) => p.amount < 0n).sort(byAccount),
  ];
}

/** The same rule the database enforces, checked first so a bug names itself. */
function checkBalanced(transactionId: string, postings: readonly PostingInput[]): void {
  const totals = new Map<Currency, bigint>();
  for (const p of postings) totals.set(p.currency, (totals.get(p.currency) ?? 0n) + p.amount);
  const unbalanced = [...totals].filter(([, total]) => total !== 0n);
  if (postings.every((p) => p.amount === 0n) || unbalanced.length > 0) {
    throw new TandemError(ErrorCode.INTERNAL, `unbalanced ledger transaction ${transactionId}`, {
      details: { unbalanced: unbalanced.map(([c, t]) => `${c}:${t}`) },
    });
  }
}

/**
 * Chunks of `max` rows, then the rest in descending powers of two: a handful of statement shapes
 * per table (each prepared once and cached), whatever the batch size.
 */
function shapedChunks<T>(items: readonly T[], max: number): T[][] {
  const out: T[][] = [];
  let i = 0;
  for (; items.length - i >= max; i += max) out.push(items.slice(i, i + max));
  for (let size = 2 ** Math.floor(Math.log2(max)); size >= 1; size /= 2) {
    if (items.length - i < size) continue;
    out.push(items.slice(i, i + size));
    i += size;
  }
  return out;
}

/** A unique violation on the idempotency key: a concurrent request with the same key won. */
function isIdempotencyRace(error: unknown): boolean {
  return isUniqueViolation(error, {
    constraint: "ledger_transactions_idempotency_key_key",
    columns: "ledger_transactions.idempotency_key",
  });
}

/**
 * Runs `fn` in its own DB transaction, again after a serialization failure, a deadlock or a lost
 * race on an idempotency key — the rerun then answers the stored result.
 */
export function inTransaction<T>(db: Kysely<Database>, fn: (tx: Tx) => Promise<T>): Promise<T> {
  return runInTransaction(db, fn, { retryOn: isIdempotencyRace });
}
