import { sql, type RawBuilder } from "kysely";

/**
 * Sums of ledger amounts that cannot overflow. One amount fits a signed 64-bit integer, but a sum
 * over many rows may not: SQLite's SUM fails with "integer overflow" past 2^63 − 1 (PostgreSQL's
 * SUM(bigint) is numeric and exact, yet a 64-bit reader of it fails the same way). So each amount
 * is split into a high part (amount >> 32, arithmetic, |high| < 2^31) and a low part
 * (amount & 0xFFFFFFFF, 0 ≤ low < 2^32); both dialects sum each part in 64 bits without overflow
 * for up to 2^31 rows, and `readWideSum` joins them in a BigInt: high × 2^32 + low, exact.
 * Costs one more aggregate per sum; used wherever the ledger is summed.
 */
export interface WideSumColumns {
  readonly high: RawBuilder<string | null>;
  readonly low: RawBuilder<string | null>;
}

/** The two aggregates of `SUM(amount)`; `amount` is an SQL expression of a 64-bit amount. */
export function wideSum(amount: RawBuilder<unknown>): WideSumColumns {
  return {
    high: sql<string | null>`CAST(SUM(${amount} >> 32) AS TEXT)`,
    low: sql<string | null>`CAST(SUM(${amount} & 4294967295) AS TEXT)`,
  };
}

/** The exact sum from its two parts (null parts: no rows, 0). */
export function readWideSum(high: string | number | null, low: string | number | null): bigint {
  return (BigInt(high ?? 0) << 32n) + BigInt(low ?? 0);
}
