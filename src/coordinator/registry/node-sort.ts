import { sql, type RawBuilder, type SelectQueryBuilder } from "kysely";
import { ErrorCode, TandemError } from "../../core/errors.ts";
import { DEFAULT_CATALOG_PRICES, type CatalogPrices } from "../../core/pricing.ts";
import type { NodeSortKey } from "../../protocol/nodes.ts";
import type { Database } from "../store/schema.ts";

/**
 * Sorted node lists with keyset (cursor) paging: rows ordered by (column, id), the cursor holds
 * the last row's pair, and the next page starts strictly after it, so paging stays exact while
 * nodes change and costs `limit` index entries (indexes `(column, id)`: 0001 and 0011). The GPU
 * model is the one nullable key (CPU-only nodes): NULL sorts as the largest value on both
 * databases (PostgreSQL's default; SQLite is told `nulls last`/`nulls first`).
 *
 * Price is not a column but an expression (`nodePriceSql`): the node's hourly price as the
 * scheduler prices it, NULL where the catalog cannot price it (sorted like a NULL model). No index
 * can serve it, since the catalog is configuration: a price-sorted page scans the filtered nodes
 * and keeps the top `limit` (100,000 nodes, load ~4: ~70–90 ms on SQLite, ~120 ms on PostgreSQL,
 * of which ~50 ms is the scan and sort themselves; indexed sorts take ~2 ms).
 */
export type SortOrder = "asc" | "desc";

/** How node prices are set: the catalog's per-model prices, and whether suppliers' own count. */
export interface NodePricing {
  readonly prices: CatalogPrices;
  readonly mode: "catalog" | "market";
}

export const CATALOG_PRICING: NodePricing = { prices: DEFAULT_CATALOG_PRICES, mode: "catalog" };

/**
 * A node's price per hour in micro-dollars, as SQL: core/pricing.ts `nodePriceUsd` (a CPU-only
 * node's flat price, else the model's price × GPU count, NULL for a model the catalog lacks),
 * under the supplier's own `price_per_hour` in market mode (inventory.ts prices the same way).
 * Every catalog value is a bound parameter.
 */
export function nodePriceSql(pricing: NodePricing): RawBuilder<number | string | null> {
  const models = Object.entries(pricing.prices.perGpuHour);
  const perGpu =
    models.length === 0
      ? sql`CAST(NULL AS BIGINT)`
      : sql`CASE nodes.gpu_model ${sql.join(
          models.map(([model, price]) => sql`WHEN ${model} THEN CAST(${Number(price)} AS BIGINT)`),
          sql` `,
        )} END`;
  const catalog = sql`CASE WHEN nodes.gpu_count = 0 THEN CAST(${Number(pricing.prices.cpuNodeHour)} AS BIGINT) ELSE (${perGpu}) * nodes.gpu_count END`;
  return pricing.mode === "market"
    ? sql<number | string | null>`COALESCE(nodes.price_per_hour, ${catalog})`
    : sql<number | string | null>`(${catalog})`;
}

const COLUMNS = {
  uptime: "uptime_30d",
  reputation: "reputation",
  gpuModel: "gpu_model",
  region: "region",
  status: "status",
} as const satisfies Record<Exclude<NodeSortKey, "registered" | "price">, string>;
type SortedKey = Exclude<NodeSortKey, "registered">;
type SortValue = string | number | null;
const NULLABLE: ReadonlySet<SortedKey> = new Set(["gpuModel", "price"]);

/** Uptime and reputation list the best first unless asked otherwise; price the cheapest first. */
export function defaultOrder(sort: NodeSortKey): SortOrder {
  return sort === "uptime" || sort === "reputation" ? "desc" : "asc";
}

export function sortedQuery<O>(
  query: SelectQueryBuilder<Database, "nodes", O>,
  sort: SortedKey,
  order: SortOrder,
  cursor: string | undefined,
  price: RawBuilder<unknown>,
): SelectQueryBuilder<Database, "nodes", O> {
  const column = sort === "price" ? price : sql.ref(`nodes.${COLUMNS[sort]}`);
  const nulls = NULLABLE.has(sort)
    ? sql.raw(order === "asc" ? " nulls last" : " nulls first")
    : sql``;
  let q = query.orderBy(sql`${column} ${sql.raw(order)}${nulls}`).orderBy("nodes.id", order);
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
    return NULLABLE.has(sort) && order === "asc" ? eb.or([beyond, eb(column, "is", null)]) : beyond;
  });
  return q;
}

export function encodeSortCursor(sort: SortedKey, value: SortValue, id: string): string {
  return Buffer.from(JSON.stringify([sort, value, id])).toString("base64url");
}

/** The value of the row's sort column (or its price, micro-dollars), as the cursor carries it. */
export function sortValueOf(
  sort: SortedKey,
  row: {
    uptime_30d: number;
    reputation: number;
    gpu_model: string | null;
    region: string;
    status: string;
  },
  priceUsd: number | null,
): SortValue {
  return sort === "price" ? priceUsd : row[COLUMNS[sort]];
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
  const ok =
    sort === "price"
      ? value === null || (Number.isSafeInteger(value) && (value as number) >= 0)
      : sort === "uptime" || sort === "reputation"
        ? typeof value === "number" && Number.isFinite(value)
        : typeof value === "string"
          ? value.length <= 64
          : value === null && sort === "gpuModel";
  if (!ok) throw malformed();
  return [value as SortValue, id];
}
