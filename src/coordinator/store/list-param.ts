/**
 * A whole list bound as one statement parameter, so a query over 10,000 ids is one statement with
 * one parameter on either database, planned once (an `IN (?, ?, …)` list of hundreds of values
 * cost more to bind and plan on PostgreSQL than to run: bench/RESULTS.md, session 5).
 *
 * - PostgreSQL: an array literal, for `unnest($1::text[])` or `= ANY($1::text[])`.
 * - SQLite: a JSON array, for `json_each(?)` (its elements come back in the column `value`).
 */
import { ErrorCode, TandemError } from "../../core/errors.ts";
import type { Dialect } from "./database.ts";

/** The parameter that carries `values` as one list on `dialect`. */
export function listParam(dialect: Dialect, values: readonly string[]): unknown {
  return dialect === "postgres" ? arrayLiteral(values) : JSON.stringify(values);
}

/**
 * Values as a PostgreSQL array literal, for `pg` to send as is (its `toPostgres` hook): `pg`'s own
 * arrays quote every element through two regular expressions, and the strings that made were most
 * of a settlement pass's garbage. Plain tokens — ids, account names, currencies — go in bare (the
 * array syntax allows it: no braces, commas, quotes, backslashes or white space, and not `NULL`),
 * other text is quoted and escaped, numbers and bigints are written by `join`, null is NULL.
 */
export function arrayLiteral(values: readonly unknown[]): { toPostgres(): string } {
  const elements = values.map((value) => {
    if (value === null || value === undefined) return "NULL";
    if (typeof value === "string") return arrayElement(value);
    if (typeof value === "bigint" || typeof value === "number") return value;
    throw new TandemError(ErrorCode.INTERNAL, `unexpected ${typeof value} in an array parameter`);
  });
  const text = `{${elements.join(",")}}`;
  return { toPostgres: () => text };
}

const NEEDS_QUOTES = /[{}",\\\s]/;
const ESCAPED = /["\\]/g;

function arrayElement(value: string): string {
  if (value === "" || NEEDS_QUOTES.test(value) || (value.length === 4 && /^null$/i.test(value)))
    return `"${value.replace(ESCAPED, "\\$&")}"`; // one pass: JSON answers are full of quotes
  return value;
}
