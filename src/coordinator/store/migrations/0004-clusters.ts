import { sql, type Kysely } from "kysely";
import type { Dialect } from "../database.ts";
import { dialectTypes } from "./dialect-types.ts";

/** Clusters, cluster nodes (leases), cluster events and logs. */
export async function up(db: Kysely<unknown>, dialect: Dialect): Promise<void> {
  const { id, serial, serialPk } = dialectTypes(dialect);

  await db.schema
    .createTable("clusters")
    .addColumn("id", id, (c) => c.primaryKey())
    .addColumn("account_id", id, (c) => c.notNull().references("accounts.id"))
    .addColumn("kind", "text", (c) => c.notNull())
    .addColumn("status", "text", (c) => c.notNull())
    .addColumn("spec", "text", (c) => c.notNull())
    .addColumn("node_count", "integer", (c) => c.notNull())
    .addColumn("hours", "integer", (c) => c.notNull())
    .addColumn("currency", "text", (c) => c.notNull())
    .addColumn("idempotency_key", "text", (c) => c.unique())
    .addColumn("created_at", "bigint", (c) => c.notNull())
    .addColumn("started_at", "bigint")
    .addColumn("ends_at", "bigint")
    .addColumn("ended_at", "bigint")
    .execute();
  await db.schema
    .createIndex("clusters_account")
    .on("clusters")
    .columns(["account_id", "id"])
    .execute();
  await db.schema.createIndex("clusters_status").on("clusters").columns(["status", "id"]).execute();

  await db.schema
    .createTable("cluster_nodes")
    .addColumn("cluster_id", id, (c) => c.notNull().references("clusters.id"))
    .addColumn("node_id", id, (c) => c.notNull().references("nodes.id"))
    .addColumn("supplier_account_id", id, (c) => c.notNull().references("accounts.id"))
    .addColumn("rank", "integer", (c) => c.notNull())
    .addColumn("role", "text", (c) => c.notNull())
    .addColumn("region", "text", (c) => c.notNull())
    .addColumn("zone", "text", (c) => c.notNull())
    .addColumn("status", "text", (c) => c.notNull())
    .addColumn("reserved_until", "bigint")
    .addColumn("active", "integer", (c) => c.notNull())
    .addColumn("price_per_hour", "bigint", (c) => c.notNull())
    .addColumn("exit_code", "integer")
    .addColumn("started_at", "bigint")
    .addColumn("ended_at", "bigint")
    .addPrimaryKeyConstraint("cluster_nodes_pk", ["cluster_id", "rank"])
    .execute();
  // The rule "a node is in at most one active lease" (DESIGN §8.2), enforced by the database.
  await sql`create unique index cluster_nodes_one_active_lease on cluster_nodes (node_id) where active = 1`.execute(
    db,
  );

  await db.schema
    .createTable("cluster_events")
    .addColumn("id", serial, serialPk)
    .addColumn("cluster_id", id, (c) => c.notNull().references("clusters.id"))
    .addColumn("at", "bigint", (c) => c.notNull())
    .addColumn("type", "text", (c) => c.notNull())
    .addColumn("detail", "text", (c) => c.notNull())
    .execute();
  await db.schema
    .createIndex("cluster_events_cluster")
    .on("cluster_events")
    .columns(["cluster_id", "id"])
    .execute();

  await db.schema
    .createTable("cluster_logs")
    .addColumn("id", serial, serialPk)
    .addColumn("cluster_id", id, (c) => c.notNull().references("clusters.id"))
    .addColumn("rank", "integer", (c) => c.notNull())
    .addColumn("stream", "text", (c) => c.notNull())
    .addColumn("at", "bigint", (c) => c.notNull())
    .addColumn("text", "text", (c) => c.notNull())
    .execute();
  await db.schema
    .createIndex("cluster_logs_cluster")
    .on("cluster_logs")
    .columns(["cluster_id", "id"])
    .execute();
}
