/**
 * A whole list bound as one statement parameter: a JSON array, which PostgreSQL reads with
 * `json_array_elements_text($1::json)` and SQLite with `json_each(?)` (elements in its column
 * `value`). A query over 10,000 ids is then one statement with one parameter, planned once (an
 * `IN (?, ?, …)` list of hundreds of values cost more to bind and plan on PostgreSQL than to run),
 * and the encoding is `JSON.stringify`'s: exact for any text, and native, where a hand-built
 * PostgreSQL array literal took a tenth of a settlement pass (bench/RESULTS.md, session 5).
 * Pass bigints as decimal strings (`String(amount)`) and cast them in SQL.
 */
export function listParam(values: ReadonlyArray<string | number | null>): string {
  return JSON.stringify(values);
}
