import { sql, type SelectQueryBuilder } from "kysely";
import { ErrorCode, TandemError } from "../../core/errors.ts";
import type { NodeSortKey } from "../../protocol/nodes.ts";
import type { Database } from "../store/schema.ts";

/**
 * Sorted node lists with keyset (cursor) paging: rows ordered by (column, id), the cursor holds
 * the last row's pair, and the next page starts strictly after it, so paging stays exact while
 * nodes change and costs `limit` index entries (indexes `(column, id)`: 0001 and 0011). The GPU
 * model is the one nullable key (CPU-only nodes): NULL sorts as the largest value on both
 * databases (PostgreSQL's default; SQLite is told `nulls last`/`nulls first`).
 */
export type SortOrder = "asc" | "desc";

const COLUMNS = {
  uptime: "uptime_30d",
  reputation: "reputation",
  gpuModel: "gpu_model",
  region: "region",
  status: "status",
} as const;
type SortedKey = keyof typeof COLUMNS;
type SortValue = string | number | null;

/** Uptime and reputation list the best first unless asked otherwise. */
export function defaultOrder(sort: NodeSortKey): SortOrder {
  return sort === "uptime" || sort === "reputation" ? "desc" : "asc";
}

export function sortedQuery<O>(
  query: SelectQueryBuilder<Database, "nodes", O>,
  sort: SortedKey,
  order: SortOrder,
  cursor: string | undefined,
): SelectQueryBuilder<Database, "nodes", O> {
  const column = COLUMNS[sort];
  const ref = sql.ref(`nodes.${column}`);
  const nulls =
    sort === "gpuModel" ? sql.raw(order === "asc" ? " nulls last" : " nulls first") : sql``;
  let q = query.orderBy(sql`${ref} ${sql.raw(order)}${nulls}`).orderBy("nodes.id", order);
  if (cursor === undefined) return q;
  const [value, lastId] = decodeSortCursor(cursor, sort);
  const after = order === "asc" ? ">" : "<";
  q = q.where((eb) => {
    const idAfter = eb("nodes.id", after, lastId);
    if (value === null) {
      // NULLs are the largest: after a NULL ascending only NULLs remain; descending, all values.
      return order === "asc"
        ? eb.and([eb(column, "is", null), idAfter])
        : eb.or([eb(column, "is not", null), eb.and([eb(column, "is", null), idAfter])]);
    }
    const beyond = eb.or([eb(column, after, value), eb.and([eb(column, "=", value), idAfter])]);
    return sort === "gpuModel" && order === "asc"
      ? eb.or([beyond, eb(column, "is", null)])
      : beyond;
  });
  return q;
}

export function encodeSortCursor(sort: SortedKey, value: SortValue, id: string): string {
  return Buffer.from(JSON.stringify([sort, value, id])).toString("base64url");
}

/** The value of the row's sort column, as the cursor carries it. */
export function sortValueOf(
  sort: SortedKey,
  row: {
    uptime_30d: number;
    reputation: number;
    gpu_model: string | null;
    region: string;
    status: string;
  },
): SortValue {
  return row[COLUMNS[sort]];
}

function decodeSortCursor(cursor: string, sort: SortedKey): [SortValue, string] {
  const malformed = () =>
    new TandemError(ErrorCode.VALIDATION_FAILED, "malformed cursor", { details: { cursor } });
  let parsed: unknown;
  try {
    parsed = JSON.parse(Buffer.from(cursor, "base64url").toString());
  } catch (error) {
    throw new TandemError(ErrorCode.VALIDATION_FAILED, "malformed cursor", {
      details: { cursor },
      cause: error,
    });
  }
  if (!Array.isArray(parsed) || parsed.length !== 3) throw malformed();
  const [key, value, id] = parsed as unknown[];
  if (key !== sort || typeof id !== "string" || !/^node_[0-9a-z]{26}$/.test(id)) throw malformed();
  const numeric = sort === "uptime" || sort === "reputation";
  const ok = numeric
    ? typeof value === "number" && Number.isFinite(value)
    : typeof value === "string"
      ? value.length <= 64
      : value === null && sort === "gpuModel";
  if (!ok) throw malformed();
  return [value as SortValue, id];
}
