import type { Kysely } from "kysely";
import type { Dialect } from "../database.ts";
import { dialectTypes } from "./dialect-types.ts";

/**
 * Every status change of a cluster and of each of its leases, with from, to, reason and time
 * (DESIGN.md §4 "Event history"), written only by scheduler/cluster-lifecycle.ts. `lease_seq` is
 * null for the cluster's own status; `from_status` is null where the row was created.
 */
export async function up(db: Kysely<unknown>, dialect: Dialect): Promise<void> {
  const { id, serial, serialPk } = dialectTypes(dialect);
  await db.schema
    .createTable("cluster_history")
    .addColumn("id", serial, serialPk)
    .addColumn("cluster_id", id, (c) => c.notNull().references("clusters.id"))
    .addColumn("lease_seq", "integer")
    .addColumn("from_status", "text")
    .addColumn("to_status", "text", (c) => c.notNull())
    .addColumn("reason", "text", (c) => c.notNull())
    .addColumn("at", "bigint", (c) => c.notNull())
    .execute();
  await db.schema
    .createIndex("cluster_history_cluster")
    .on("cluster_history")
    .columns(["cluster_id", "id"])
    .execute();
}
