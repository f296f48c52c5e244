/**
 * Database trouble that is not a bug: the store is locked by another process, its disk is full,
 * or the connection to PostgreSQL is gone. The API answers these 503 UNAVAILABLE (the client may
 * retry), background loops log them and try again on their next round, and nothing exits.
 * Everything else a database throws is a bug and stays one (500, logged).
 */

/** SQLite result codes (better-sqlite3's `code`, extended codes included by prefix). */
const SQLITE_UNAVAILABLE: ReadonlyArray<[prefix: string, reason: string]> = [
  ["SQLITE_BUSY", "the database is locked by another process"],
  ["SQLITE_LOCKED", "the database is locked"],
  ["SQLITE_FULL", "the database's disk is full"],
  ["SQLITE_IOERR", "the database's disk failed a read or write"],
  ["SQLITE_READONLY", "the database cannot be written"],
  ["SQLITE_CANTOPEN", "the database file cannot be opened"],
];

/** PostgreSQL SQLSTATE classes and codes: connection lost, out of resources, shutting down. */
const PG_UNAVAILABLE: ReadonlyArray<[prefix: string, reason: string]> = [
  ["08", "the connection to the database was lost"],
  ["53", "the database is out of resources (disk, memory or connections)"],
  ["57P", "the database is shutting down or restarting"],
];

/** Node's socket errors while talking to PostgreSQL. */
const NETWORK_CODES = new Set(["ECONNREFUSED", "ECONNRESET", "EPIPE", "ETIMEDOUT", "EHOSTUNREACH"]);

/** Why `error` (or an error it wraps) means the store is unavailable; undefined for anything else. */
export function storeUnavailableReason(error: unknown): string | undefined {
  for (let e = error, depth = 0; e instanceof Error && depth < 5; e = e.cause, depth++) {
    const code = (e as { code?: unknown }).code;
    if (typeof code === "string") {
      if (code.startsWith("SQLITE_"))
        return SQLITE_UNAVAILABLE.find(([prefix]) => code.startsWith(prefix))?.[1];
      if (NETWORK_CODES.has(code)) return "the database cannot be reached";
      if (/^[0-9A-Z]{5}$/.test(code))
        return PG_UNAVAILABLE.find(([prefix]) => code.startsWith(prefix))?.[1];
    }
    // pg's own words when the server closes a connection under a running query.
    if (/^Connection terminated|^Client has encountered a connection error/.test(e.message))
      return "the connection to the database was lost";
  }
  return undefined;
}
