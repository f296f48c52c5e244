import type { Kysely } from "kysely";
import type { Dialect } from "../database.ts";
import { dialectTypes } from "./dialect-types.ts";

/** Autoscaled batch clusters: their bounds, each lease's idle time, and the task queue. */
export async function up(db: Kysely<unknown>, dialect: Dialect): Promise<void> {
  const { id } = dialectTypes(dialect);
  await db.schema.alterTable("clusters").addColumn("autoscale", "text").execute();
  await db.schema.alterTable("cluster_nodes").addColumn("idle_since", "bigint").execute();
  await db.schema
    .createTable("cluster_tasks")
    .addColumn("cluster_id", id, (c) => c.notNull().references("clusters.id"))
    .addColumn("seq", "integer", (c) => c.notNull())
    .addColumn("command", "text", (c) => c.notNull())
    .addColumn("status", "text", (c) => c.notNull())
    .addColumn("lease_seq", "integer")
    .addColumn("node_id", id)
    .addColumn("exit_code", "integer")
    .addColumn("submitted_at", "bigint", (c) => c.notNull())
    .addColumn("started_at", "bigint")
    .addColumn("ended_at", "bigint")
    .addPrimaryKeyConstraint("cluster_tasks_pk", ["cluster_id", "seq"])
    .execute();
  await db.schema
    .createIndex("cluster_tasks_status")
    .on("cluster_tasks")
    .columns(["cluster_id", "status", "seq"])
    .execute();
}
