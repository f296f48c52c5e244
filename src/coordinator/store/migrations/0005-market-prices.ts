import type { Kysely } from "kysely";

/** A supplier's own price per node-hour (micro-dollars), used in `market` pricing mode. */
export async function up(db: Kysely<unknown>): Promise<void> {
  await db.schema.alterTable("nodes").addColumn("price_per_hour", "bigint").execute();
}
