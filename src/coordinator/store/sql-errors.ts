/**
 * What the databases' error codes mean to Tandem, in one place: PostgreSQL's SQLSTATE codes
 * (https://www.postgresql.org/docs/current/errcodes-appendix.html) and better-sqlite3's extended
 * result codes name the same few outcomes differently.
 */

const PG_UNIQUE_VIOLATION = "23505";
const PG_SERIALIZATION_FAILURE = "40001";
const PG_DEADLOCK_DETECTED = "40P01";
const SQLITE_UNIQUE = ["SQLITE_CONSTRAINT_UNIQUE", "SQLITE_CONSTRAINT_PRIMARYKEY"];

interface DriverError {
  code?: unknown;
  /** PostgreSQL: the violated constraint's name. */
  constraint?: unknown;
  message?: unknown;
}

function driverError(error: unknown): DriverError {
  return typeof error === "object" && error !== null ? error : {};
}

/**
 * A unique index or key refused a row; with `on`, only that one: PostgreSQL names the constraint
 * (`constraint`), SQLite the columns (`table.column` in its message).
 */
export function isUniqueViolation(
  error: unknown,
  on?: { constraint: string; columns: string },
): boolean {
  const e = driverError(error);
  if (e.code === PG_UNIQUE_VIOLATION) return on === undefined || e.constraint === on.constraint;
  if (typeof e.code !== "string" || !SQLITE_UNIQUE.includes(e.code)) return false;
  return on === undefined || (typeof e.message === "string" && e.message.includes(on.columns));
}

/** PostgreSQL gave up on a transaction that ran into another: running it again may succeed. */
export function isSerializationFailure(error: unknown): boolean {
  const code = driverError(error).code;
  return code === PG_SERIALIZATION_FAILURE || code === PG_DEADLOCK_DETECTED;
}
