/** Reads a 64-bit integer column (a string from PostgreSQL, a number from SQLite) as a number. */
export function toNumber(value: number | string | bigint): number {
  return typeof value === "number" ? value : Number(value);
}

export function toNumberOrNull(value: number | string | bigint | null): number | null {
  return value === null ? null : toNumber(value);
}
