import { sql, type Kysely } from "kysely";
import type { Dialect } from "../database.ts";

/**
 * Each node's hourly price as placement prices it, stored (`nodes.effective_price_per_hour`,
 * micro-dollars, NULL where the catalog cannot price the node) and indexed with the id (and
 * after the GPU model), so the node list sorts by price from an index (registry/node-sort.ts)
 * instead of scanning every node.
 *
 * The pricing the column follows is stored too: `node_pricing` (the mode and a CPU-only node's
 * price, one row) and `node_gpu_prices` (the catalog's price per GPU-hour by model). A trigger
 * on `nodes` recomputes a node's price whenever one of its inputs is written (insert, or an update
 * of `gpu_model`, `gpu_count` or `price_per_hour`), whichever code path writes it; at start the
 * coordinator replaces the stored pricing when its own differs and re-fires the trigger on every
 * node (`syncNodePricing`). The formula lives here alone:
 * the supplier's own price in market mode; else a CPU-only node's flat price; else the model's
 * price × GPU count (NULL for a model the catalog lacks), as core/pricing.ts `nodePriceUsd`.
 *
 * PostgreSQL computes it in a BEFORE trigger; SQLite sets it in an AFTER trigger by rowid. A
 * pricing change locks `nodes` against writes for its transaction (registry/node-sort.ts), so no
 * node write can keep a price computed under the pricing it replaces.
 *
 * Existing nodes are priced under the default catalog as it was when this migration was written
 * (`CATALOG_AT_0013`, frozen: core/pricing.ts has gained models since); a coordinator whose pricing
 * differs (today's catalog, another catalog, market mode) recomputes them once at start.
 */
export async function up(db: Kysely<unknown>, dialect: Dialect): Promise<void> {
  await db.schema
    .createTable("node_pricing")
    .addColumn("id", "integer", (c) => c.primaryKey().check(sql`id = 1`))
    .addColumn("mode", "text", (c) => c.notNull().check(sql`mode in ('catalog', 'market')`))
    .addColumn("cpu_node_hour", "bigint", (c) => c.notNull())
    .execute();
  await db.schema
    .createTable("node_gpu_prices")
    .addColumn("model", "text", (c) => c.primaryKey())
    .addColumn("per_gpu_hour", "bigint", (c) => c.notNull())
    .execute();
  await sql`insert into node_pricing (id, mode, cpu_node_hour)
    values (1, 'catalog', ${CATALOG_AT_0013.cpuNodeHour})`.execute(db);
  await sql`insert into node_gpu_prices (model, per_gpu_hour) values ${sql.join(
    Object.entries(CATALOG_AT_0013.perGpuHour).map(([model, price]) => sql`(${model}, ${price})`),
  )}`.execute(db);

  await db.schema.alterTable("nodes").addColumn("effective_price_per_hour", "bigint").execute();
  for (const statement of dialect === "postgres" ? postgresTrigger() : sqliteTriggers())
    await statement.execute(db);
  // Re-fires the trigger on every node: the backfill, by the same formula.
  await sql`update nodes set gpu_count = gpu_count`.execute(db);
  await db.schema
    .createIndex("nodes_effective_price_per_hour_id")
    .on("nodes")
    .columns(["effective_price_per_hour", "id"])
    .execute();
  // One model's nodes, cheapest first (the explorer's model filter): the model's prices cluster in
  // the index above, so walking it for a dear model passes most of the network first (PostgreSQL
  // chose that: ~70 ms a page, bench/RESULTS.md); this one starts at the model.
  await db.schema
    .createIndex("nodes_gpu_model_effective_price_per_hour_id")
    .on("nodes")
    .columns(["gpu_model", "effective_price_per_hour", "id"])
    .execute();
}

/** core/pricing.ts `DEFAULT_CATALOG_PRICES` at commit b0e03c6, micro-dollars per hour. */
const CATALOG_AT_0013 = {
  perGpuHour: {
    h200: 2_500_000,
    "h100-80gb": 1_990_000,
    "a100-80gb": 1_190_000,
    l40s: 790_000,
    "rtx-a6000": 450_000,
    "rtx-4090": 390_000,
    "rtx-a5000": 250_000,
    "rtx-3090": 220_000,
    "rtx-a4000": 170_000,
    "rtx-4070": 150_000,
    "rtx-3080": 150_000,
    "rtx-3070": 120_000,
    "rtx-3060-ti": 100_000,
  },
  cpuNodeHour: 20_000,
};

/** The price of the node row `row` (`NEW` in a trigger) under the stored pricing. */
function priceOf(row: "NEW") {
  const r = sql.raw(row);
  return sql`CASE
    WHEN ${r}.price_per_hour IS NOT NULL AND (SELECT mode FROM node_pricing WHERE id = 1) = 'market'
      THEN ${r}.price_per_hour
    WHEN ${r}.gpu_count = 0 THEN (SELECT cpu_node_hour FROM node_pricing WHERE id = 1)
    ELSE (SELECT per_gpu_hour FROM node_gpu_prices WHERE model = ${r}.gpu_model) * ${r}.gpu_count
  END`;
}

function postgresTrigger() {
  return [
    sql`CREATE FUNCTION nodes_effective_price() RETURNS trigger LANGUAGE plpgsql AS $$
      BEGIN
        NEW.effective_price_per_hour := ${priceOf("NEW")};
        RETURN NEW;
      END $$`,
    sql`CREATE TRIGGER nodes_effective_price
      BEFORE INSERT OR UPDATE OF gpu_model, gpu_count, price_per_hour ON nodes
      FOR EACH ROW EXECUTE FUNCTION nodes_effective_price()`,
  ];
}

function sqliteTriggers() {
  const set = sql`UPDATE nodes SET effective_price_per_hour = ${priceOf("NEW")} WHERE rowid = NEW.rowid;`;
  return [
    sql`CREATE TRIGGER nodes_effective_price_insert AFTER INSERT ON nodes BEGIN ${set} END`,
    sql`CREATE TRIGGER nodes_effective_price_update
      AFTER UPDATE OF gpu_model, gpu_count, price_per_hour ON nodes BEGIN ${set} END`,
  ];
}
