/**
 * SQLite that waits for a lock without stopping the event loop.
 *
 * better-sqlite3 is synchronous: with `busy_timeout = 5000` a write that met another process's
 * lock blocked the whole coordinator for up to 5 s — heartbeats unread, so its workers fenced
 * themselves — and then threw SQLITE_BUSY, which one unguarded loop turned into an exit. Here
 * SQLite's own wait is cut to `BLOCKING_WAIT_MS` and the rest of the wait happens between
 * attempts, on timers: the event loop keeps serving while a write waits, for up to `patienceMs`,
 * after which the caller gets the SQLITE_BUSY (503 UNAVAILABLE at the API edge).
 *
 * Transactions begin IMMEDIATE, taking the write lock at BEGIN: the one statement where waiting
 * and retrying is always safe (nothing has been read or written yet). A deferred BEGIN could meet
 * the lock mid-transaction, where a retry cannot help. Statements outside transactions are retried
 * the same way. Inside a transaction that holds the write lock, WAL lets nothing block us.
 */
import {
  CompiledQuery,
  SqliteDialect,
  SqliteDriver,
  type DatabaseConnection,
  type Driver,
} from "kysely";
import type { SqliteDatabase, SqliteDialectConfig } from "kysely";

/** How long SQLite itself may block the event loop on a lock per attempt, ms. */
export const BLOCKING_WAIT_MS = 20;

/** The database a patient dialect drives: better-sqlite3's, or a wrapper exposing `inTransaction`. */
type PatientDatabase = SqliteDatabase & { readonly inTransaction: boolean };

function isBusy(error: unknown): boolean {
  const code = (error as { code?: unknown }).code;
  return typeof code === "string" && (code.startsWith("SQLITE_BUSY") || code === "SQLITE_LOCKED");
}

async function patiently<T>(attempt: () => Promise<T>, patienceMs: number): Promise<T> {
  const giveUpAt = performance.now() + patienceMs;
  for (let tries = 0; ; tries++) {
    try {
      return await attempt();
    } catch (error) {
      if (!isBusy(error) || performance.now() >= giveUpAt) throw error;
      await new Promise((r) => setTimeout(r, Math.min(100, 5 * 2 ** Math.min(tries, 5))));
    }
  }
}

class PatientSqliteDriver extends SqliteDriver {
  constructor(
    config: SqliteDialectConfig,
    private readonly database: PatientDatabase,
    private readonly patienceMs: number,
  ) {
    super(config);
  }

  override async acquireConnection(): Promise<DatabaseConnection> {
    const connection = await super.acquireConnection();
    return {
      executeQuery: (query) =>
        this.database.inTransaction
          ? connection.executeQuery(query)
          : patiently(() => connection.executeQuery(query), this.patienceMs),
      streamQuery: (query, chunkSize) => connection.streamQuery(query, chunkSize),
    };
  }

  override async beginTransaction(connection: DatabaseConnection): Promise<void> {
    await connection.executeQuery(CompiledQuery.raw("begin immediate"));
  }

  override async rollbackTransaction(connection: DatabaseConnection): Promise<void> {
    // SQLite rolls back by itself on some errors (SQLITE_FULL, SQLITE_IOERR): a second rollback
    // would fail and hide the error that caused it.
    if (this.database.inTransaction) await super.rollbackTransaction(connection);
  }
}

/** Kysely's SQLite dialect with the waiting described above. */
export class PatientSqliteDialect extends SqliteDialect {
  constructor(
    private readonly patientConfig: SqliteDialectConfig & { database: PatientDatabase },
    private readonly patienceMs: number,
  ) {
    super(patientConfig);
  }

  override createDriver(): Driver {
    return new PatientSqliteDriver(
      this.patientConfig,
      this.patientConfig.database,
      this.patienceMs,
    );
  }
}
