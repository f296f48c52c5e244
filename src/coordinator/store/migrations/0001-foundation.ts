import type { Kysely } from "kysely";
import type { Dialect } from "../database.ts";
import { dialectTypes } from "./dialect-types.ts";

/** Accounts, API keys, devices, nodes, node history, online intervals, GPU UUIDs. */
export async function up(db: Kysely<unknown>, dialect: Dialect): Promise<void> {
  const { id, serial, serialPk } = dialectTypes(dialect);

  await db.schema
    .createTable("accounts")
    .addColumn("id", id, (c) => c.primaryKey())
    .addColumn("roles", "text", (c) => c.notNull())
    .addColumn("created_at", "bigint", (c) => c.notNull())
    .addColumn("disabled_at", "bigint")
    .execute();

  await db.schema
    .createTable("api_keys")
    .addColumn("id", id, (c) => c.primaryKey())
    .addColumn("account_id", id, (c) => c.notNull().references("accounts.id"))
    .addColumn("key_hash", "text", (c) => c.notNull().unique())
    .addColumn("prefix", "text", (c) => c.notNull())
    .addColumn("created_at", "bigint", (c) => c.notNull())
    .addColumn("revoked_at", "bigint")
    .execute();
  await db.schema.createIndex("api_keys_account").on("api_keys").column("account_id").execute();

  await db.schema
    .createTable("devices")
    .addColumn("id", id, (c) => c.primaryKey())
    .addColumn("account_id", id, (c) => c.notNull().references("accounts.id"))
    .addColumn("public_key", "text", (c) => c.notNull().unique())
    .addColumn("status", "text", (c) => c.notNull())
    .addColumn("created_at", "bigint", (c) => c.notNull())
    .addColumn("revoked_at", "bigint")
    .execute();

  await db.schema
    .createTable("nodes")
    .addColumn("id", id, (c) => c.primaryKey())
    .addColumn("device_id", id, (c) => c.notNull().unique().references("devices.id"))
    .addColumn("account_id", id, (c) => c.notNull().references("accounts.id"))
    .addColumn("status", "text", (c) => c.notNull())
    .addColumn("region", "text", (c) => c.notNull())
    .addColumn("zone", "text", (c) => c.notNull())
    .addColumn("hardware", "text", (c) => c.notNull())
    .addColumn("gpu_model", "text")
    .addColumn("gpu_count", "integer", (c) => c.notNull())
    .addColumn("vram_mib", "integer", (c) => c.notNull())
    .addColumn("flags", "text", (c) => c.notNull())
    .addColumn("verified_at", "bigint")
    .addColumn("registered_at", "bigint", (c) => c.notNull())
    .addColumn("last_seen_at", "bigint")
    .addColumn("uptime_24h", "double precision", (c) => c.notNull())
    .addColumn("uptime_7d", "double precision", (c) => c.notNull())
    .addColumn("uptime_30d", "double precision", (c) => c.notNull())
    .execute();
  // The node list pages by id; each common filter gets an index that keeps that order.
  for (const column of ["status", "gpu_model", "region", "zone"]) {
    await db.schema.createIndex(`nodes_${column}_id`).on("nodes").columns([column, "id"]).execute();
  }

  await db.schema
    .createTable("node_history")
    .addColumn("id", serial, serialPk)
    .addColumn("node_id", id, (c) => c.notNull().references("nodes.id"))
    .addColumn("at", "bigint", (c) => c.notNull())
    .addColumn("actor", "text", (c) => c.notNull())
    .addColumn("action", "text", (c) => c.notNull())
    .addColumn("from_status", "text")
    .addColumn("to_status", "text")
    .addColumn("detail", "text", (c) => c.notNull())
    .execute();
  await db.schema
    .createIndex("node_history_node")
    .on("node_history")
    .columns(["node_id", "id"])
    .execute();

  await db.schema
    .createTable("node_intervals")
    .addColumn("id", serial, serialPk)
    .addColumn("node_id", id, (c) => c.notNull().references("nodes.id"))
    .addColumn("start_ms", "bigint", (c) => c.notNull())
    .addColumn("end_ms", "bigint")
    .execute();
  await db.schema
    .createIndex("node_intervals_node")
    .on("node_intervals")
    .columns(["node_id", "start_ms"])
    .execute();

  await db.schema
    .createTable("gpu_uuids")
    .addColumn("uuid", "text", (c) => c.notNull())
    .addColumn("node_id", id, (c) => c.notNull().references("nodes.id"))
    .addPrimaryKeyConstraint("gpu_uuids_pk", ["uuid", "node_id"])
    .execute();
}
