import { PostgresAdapter, sql, type Kysely, type SelectQueryBuilder } from "kysely";
import { ErrorCode, TandemError } from "../../core/errors.ts";
import { DEFAULT_CATALOG_PRICES, type CatalogPrices } from "../../core/pricing.ts";
import type { NodeSortKey } from "../../protocol/nodes.ts";
import type { Database } from "../store/schema.ts";
import { runInTransaction } from "../store/transaction.ts";

/**
 * Sorted node lists with keyset (cursor) paging: rows ordered by (column, id), the cursor holds
 * the last row's pair, and the next page starts strictly after it, so paging stays exact while
 * nodes change and costs `limit` index entries (indexes `(column, id)`: 0001, 0011 and 0013). The
 * GPU model and the price are the nullable keys (CPU-only nodes; nodes the catalog cannot price):
 * NULL sorts as the largest value on both databases (PostgreSQL's default; SQLite is told
 * `nulls last`/`nulls first`).
 *
 * Price is the stored `effective_price_per_hour`: the node's hourly price as the scheduler prices
 * it, kept exact by a trigger on its inputs and recomputed for every node when the coordinator
 * starts with other pricing than the column was computed under (`syncNodePricing`, migration
 * 0013). Before it was stored, a price-sorted page scanned every node (100,000 nodes: ~90–220 ms
 * a page); now it reads `limit` entries of `(price, id)`, or of `(gpu_model, price, id)` under the
 * model filter, like the other sorts (~3–6 ms; bench/RESULTS.md "Price sort from an index"). The
 * cost moved to writes: two indexed lookups per node insert or price-input update, and a rewrite
 * of every node at a start whose pricing differs from the stored one (100,000 nodes: ~1.3 s on
 * SQLite, 7–11 s on PostgreSQL, node writes held back meanwhile).
 */
export type SortOrder = "asc" | "desc";

/** How node prices are set: the catalog's per-model prices, and whether suppliers' own count. */
export interface NodePricing {
  readonly prices: CatalogPrices;
  readonly mode: "catalog" | "market";
}

export const CATALOG_PRICING: NodePricing = { prices: DEFAULT_CATALOG_PRICES, mode: "catalog" };

/**
 * Makes the stored prices follow `pricing`: when the stored pricing (`node_pricing`,
 * `node_gpu_prices`) differs, replaces it and recomputes every node's price in one statement
 * (it re-fires the price trigger), in one transaction; answers whether it did. An unchanged
 * pricing costs one read of 14 rows; a changed one holds node writes back while it runs. Two
 * replicas started with different pricing leave the last one's in place: a rolling upgrade that
 * changes the catalog shows the new prices once all replicas run it.
 */
export async function syncNodePricing(
  db: Kysely<Database>,
  pricing: NodePricing,
): Promise<boolean> {
  const [stored, models] = await Promise.all([
    db.selectFrom("node_pricing").selectAll().where("id", "=", 1).executeTakeFirstOrThrow(),
    db.selectFrom("node_gpu_prices").selectAll().execute(),
  ]);
  const wanted = Object.entries(pricing.prices.perGpuHour);
  const same =
    stored.mode === pricing.mode &&
    BigInt(stored.cpu_node_hour) === pricing.prices.cpuNodeHour &&
    models.length === wanted.length &&
    models.every((m) => pricing.prices.perGpuHour[m.model] === BigInt(m.per_gpu_hour));
  if (same) return false;
  await runInTransaction(db, async (tx) => {
    // PostgreSQL: wait for every node write in flight and hold new ones until this commits, so
    // none keeps a price computed under the old pricing (a registration's new row is invisible
    // to the recompute below); reads go on. SQLite has one writer at a time already.
    if (tx.getExecutor().adapter instanceof PostgresAdapter)
      await sql`lock table nodes in share row exclusive mode`.execute(tx);
    await tx
      .updateTable("node_pricing")
      .set({ mode: pricing.mode, cpu_node_hour: Number(pricing.prices.cpuNodeHour) })
      .where("id", "=", 1)
      .execute();
    await tx.deleteFrom("node_gpu_prices").execute();
    if (wanted.length > 0)
      await tx
        .insertInto("node_gpu_prices")
        .values(wanted.map(([model, price]) => ({ model, per_gpu_hour: Number(price) })))
        .execute();
    await tx
      .updateTable("nodes")
      .set({ gpu_count: sql<number>`gpu_count` })
      .execute();
  });
  return true;
}

const COLUMNS = {
  uptime: "uptime_30d",
  reputation: "reputation",
  gpuModel: "gpu_model",
  region: "region",
  status: "status",
  price: "effective_price_per_hour",
} as const satisfies Record<Exclude<NodeSortKey, "registered">, string>;
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
): SelectQueryBuilder<Database, "nodes", O> {
  const column = sql.ref(`nodes.${COLUMNS[sort]}`);
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
