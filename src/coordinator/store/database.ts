import { mkdirSync } from "node:fs";
import { readFile } from "node:fs/promises";
import { dirname } from "node:path";
import SQLite from "better-sqlite3";
import { Kysely, Migrator, PostgresDialect, sql } from "kysely";
import pg from "pg";
import type { Database } from "./schema.ts";
import { migrationProvider } from "./migrations/index.ts";
import { BLOCKING_WAIT_MS, PatientSqliteDialect } from "./patient-sqlite.ts";
import { withStatementCache } from "./statement-cache.ts";

export type Dialect = "sqlite" | "postgres";

/**
 * Where the coordinator keeps its state: a SQLite file (default) or a PostgreSQL URL, with its
 * password apart when the URL carries none (else `PGPASSWORD`, which `pg` reads, applies).
 */
export type StoreLocation =
  | { kind: "sqlite"; path: string }
  | { kind: "postgres"; url: string; password?: string | undefined };

export interface Store {
  readonly db: Kysely<Database>;
  readonly dialect: Dialect;
  /**
   * A new connection outside the pool, not yet connected (PostgreSQL only): for what lives as long
   * as a session, such as the leader's advisory lock. Its owner connects and ends it.
   */
  readonly newSession: (() => pg.Client) | undefined;
  close(): Promise<void>;
}

/** Opens the database and brings its schema up to date. */
export async function openStore(
  location: StoreLocation,
  options: {
    onConnectionError?: (error: Error) => void;
    /** How long a SQLite write waits for another process's lock, ms (default 10,000). */
    sqliteBusyWaitMs?: number;
  } = {},
): Promise<Store> {
  const store =
    location.kind === "sqlite"
      ? openSqlite(location.path, options.sqliteBusyWaitMs ?? 10_000)
      : openPostgres(
          withPassword(location.url, location.password),
          options.onConnectionError ?? (() => {}),
        );
  const migrator = new Migrator({ db: store.db, provider: migrationProvider(store.dialect) });
  const { error } = await migrator.migrateToLatest();
  if (error !== undefined) {
    await store.close();
    throw new Error("database migration failed", { cause: error });
  }
  if (store.dialect === "sqlite") await sql`pragma optimize = 0x10002`.execute(store.db);
  return store;
}

/**
 * How often SQLite refreshes its query-planner statistics, ms. Without them SQLite picks an index
 * by rule: for an H200 in a busy zone it walks the zone's 5,000 nodes instead of the 1,600 H200
 * ones (26 ms instead of 2.6 ms at 100,000 nodes, bench/RESULTS.md). `pragma optimize` analyzes only
 * the tables that need it (never analyzed, or grown a lot since), so most runs do nothing; a full
 * first analysis of 100,000 nodes takes ~0.3 s. PostgreSQL's autovacuum does this by itself.
 */
const SQLITE_OPTIMIZE_EVERY_MS = 3_600_000;

function openSqlite(path: string, busyWaitMs: number): Store {
  if (path !== ":memory:") mkdirSync(dirname(path), { recursive: true });
  const database = new SQLite(path);
  // WAL lets readers run beside the one writer; NORMAL sync is durable across process crashes
  // (kill -9), which is the failure this store must survive. A second process's lock is waited
  // for mostly off the event loop (patient-sqlite.ts): SQLite itself blocks only briefly.
  database.pragma("journal_mode = WAL");
  database.pragma("synchronous = NORMAL");
  database.pragma("foreign_keys = ON");
  database.pragma(`busy_timeout = ${BLOCKING_WAIT_MS}`);
  // Checkpoint the WAL every ~40 MB instead of SQLite's 4 MB: each checkpoint syncs the database
  // file, and a ledger write touches the same hot pages (balances, index interiors) commit after
  // commit, so fewer checkpoints write them fewer times (+60 % batched ledger writes,
  // bench/RESULTS.md "Ledger"); the WAL is cut back to 64 MiB after each.
  database.pragma("wal_autocheckpoint = 10000");
  database.pragma("journal_size_limit = 67108864");
  // A statement that fires triggers (every ledger insert: the guard of 0003-ledger) keeps a
  // statement journal so it can be undone alone, and SQLite spills it to a temp file: a settlement
  // pass made ~65,000 small writes to one (strace), about a third of its time. In memory instead;
  // temp tables and large sorts (the ledger audit's GROUP BY) then use RAM too, bounded by the
  // data they sort, which a SQLite-sized network keeps small.
  database.pragma("temp_store = MEMORY");
  const db = new Kysely<Database>({
    dialect: new PatientSqliteDialect({ database: withStatementCache(database) }, busyWaitMs),
  });
  const optimizer = setInterval(() => {
    // Statistics only steer the planner: a refresh that fails leaves the previous ones in place.
    sql`pragma optimize`.execute(db).catch(() => undefined);
  }, SQLITE_OPTIMIZE_EVERY_MS);
  optimizer.unref();
  return {
    db,
    dialect: "sqlite",
    newSession: undefined,
    close: () => {
      clearInterval(optimizer);
      return db.destroy();
    },
  };
}

/**
 * The URL with `password` in it, in this process's memory only (never in argv): `pg` lets a URL's
 * empty password override a separate `password` option.
 */
function withPassword(url: string, password: string | undefined): string {
  if (password === undefined) return url;
  const parsed = new URL(url);
  parsed.password = encodeURIComponent(password);
  return parsed.toString();
}

function openPostgres(url: string, onConnectionError: (error: Error) => void): Store {
  const pool = new pg.Pool({ connectionString: url, max: 10 });
  // An idle client's error (a server restart, a dropped link) must not crash the process: the pool
  // discards that client and the next query opens a fresh one.
  pool.on("error", onConnectionError);
  const db = new Kysely<Database>({ dialect: new PostgresDialect({ pool }) });
  return {
    db,
    dialect: "postgres",
    newSession: () => new pg.Client({ connectionString: url }),
    close: () => db.destroy(),
  };
}

/** The PostgreSQL password in `path` (its first line), or undefined without a file. */
export async function readPasswordFile(path: string | undefined): Promise<string | undefined> {
  if (path === undefined) return undefined;
  const text = await readFile(path, "utf8").catch((error: unknown) => {
    throw new Error(`invalid coordinator config: databasePasswordFile: cannot read ${path}`, {
      cause: error,
    });
  });
  const password = text.split(/\r?\n/)[0] ?? "";
  if (password === "")
    throw new Error(`invalid coordinator config: databasePasswordFile: ${path} is empty`);
  return password;
}
