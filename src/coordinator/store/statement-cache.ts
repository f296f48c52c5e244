import type { Database as SqliteDatabase, Statement } from "better-sqlite3";

/**
 * Kysely's SQLite driver prepares every query afresh. Preparing is most of the cost of a small
 * query on SQLite — and of any write to a table with triggers, whose programs are compiled into
 * the statement — so the coordinator hands Kysely this wrapper, which keeps the most recently used
 * `capacity` statements by SQL text. Safe because Kysely runs one query at a time on SQLite's one
 * connection (a statement is never busy when asked for again), and SQLite re-prepares a cached
 * statement by itself after a schema change.
 */
export function withStatementCache(database: SqliteDatabase, capacity = 1000) {
  const cache = new Map<string, Statement>();
  return {
    get inTransaction() {
      return database.inTransaction;
    },
    close: () => {
      cache.clear();
      database.close();
    },
    prepare(sql: string): Statement {
      const cached = cache.get(sql);
      if (cached !== undefined) {
        // Re-insert: a Map iterates in insertion order, so the first key is the least recent.
        cache.delete(sql);
        cache.set(sql, cached);
        return cached;
      }
      const statement = database.prepare(sql);
      cache.set(sql, statement);
      if (cache.size > capacity) cache.delete(cache.keys().next().value!);
      return statement;
    },
  };
}
