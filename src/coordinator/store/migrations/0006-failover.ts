import { sql, type Kysely } from "kysely";
import type { Dialect } from "../database.ts";
import { dialectTypes } from "./dialect-types.ts";

/**
 * Failover: a rank can move from node to node, so a cluster's leases are numbered (`seq`) instead
 * of keyed by rank; a standby holds no rank (null) until it takes one; each lease records the run
 * of its rank it serves (`attempt`), the node's own price beside the billed rate, when it stopped
 * being billed and why it ended. Clusters carry their standby count; nodes a draining flag.
 *
 * SQLite cannot change a primary key in place, so `cluster_nodes` is rebuilt (on both dialects,
 * one code path); existing leases keep `seq = rank`, so their ledger lease ids stay valid.
 */
export async function up(db: Kysely<unknown>, dialect: Dialect): Promise<void> {
  const { id } = dialectTypes(dialect);

  await db.schema
    .createTable("cluster_leases")
    .addColumn("cluster_id", id, (c) => c.notNull().references("clusters.id"))
    .addColumn("seq", "integer", (c) => c.notNull())
    .addColumn("node_id", id, (c) => c.notNull().references("nodes.id"))
    .addColumn("supplier_account_id", id, (c) => c.notNull().references("accounts.id"))
    .addColumn("rank", "integer")
    .addColumn("attempt", "integer", (c) => c.notNull().defaultTo(0))
    .addColumn("role", "text", (c) => c.notNull())
    .addColumn("region", "text", (c) => c.notNull())
    .addColumn("zone", "text", (c) => c.notNull())
    .addColumn("status", "text", (c) => c.notNull())
    .addColumn("reserved_until", "bigint")
    .addColumn("active", "integer", (c) => c.notNull())
    .addColumn("price_per_hour", "bigint", (c) => c.notNull())
    .addColumn("node_price_per_hour", "bigint", (c) => c.notNull())
    .addColumn("exit_code", "integer")
    .addColumn("started_at", "bigint")
    .addColumn("billed_until", "bigint")
    .addColumn("ended_at", "bigint")
    .addColumn("end_reason", "text")
    .addPrimaryKeyConstraint("cluster_leases_pk", ["cluster_id", "seq"])
    .execute();
  await sql`
    insert into cluster_leases (cluster_id, seq, node_id, supplier_account_id, rank, attempt, role,
      region, zone, status, reserved_until, active, price_per_hour, node_price_per_hour, exit_code,
      started_at, billed_until, ended_at, end_reason)
    select cluster_id, rank, node_id, supplier_account_id, rank, 0, role, region, zone, status,
      reserved_until, active, price_per_hour, price_per_hour, exit_code, started_at, null, ended_at,
      null
    from cluster_nodes`.execute(db);
  await db.schema.dropTable("cluster_nodes").execute();
  await db.schema.alterTable("cluster_leases").renameTo("cluster_nodes").execute();
  // The rule "a node is in at most one active lease" (DESIGN §8.2), enforced by the database.
  await sql`create unique index cluster_nodes_one_active_lease on cluster_nodes (node_id) where active = 1`.execute(
    db,
  );
  // Reputation reads a node's lease outcomes.
  await db.schema
    .createIndex("cluster_nodes_node")
    .on("cluster_nodes")
    .columns(["node_id", "ended_at"])
    .execute();

  await db.schema
    .alterTable("clusters")
    .addColumn("shadow", "integer", (c) => c.notNull().defaultTo(0))
    .execute();
  await db.schema
    .alterTable("nodes")
    .addColumn("draining", "integer", (c) => c.notNull().defaultTo(0))
    .execute();
}
