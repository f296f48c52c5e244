import type { Kysely } from "kysely";
import type { Dialect } from "../database.ts";
import { dialectTypes } from "./dialect-types.ts";

/**
 * Coordinator replicas on one PostgreSQL (DESIGN.md §7): each replica's last sign of life, which
 * replica holds each worker's WebSocket, and the commands waiting for a replica to hand to a
 * worker connected there (replicas/replica-worker-channel.ts).
 */
export async function up(db: Kysely<unknown>, dialect: Dialect): Promise<void> {
  const { id, serial, serialPk } = dialectTypes(dialect);
  await db.schema
    .createTable("coordinator_replicas")
    .addColumn("id", id, (c) => c.primaryKey())
    .addColumn("started_at", "bigint", (c) => c.notNull())
    .addColumn("alive_at", "bigint", (c) => c.notNull())
    .execute();
  await db.schema
    .createTable("worker_presence")
    .addColumn("node_id", id, (c) => c.primaryKey().references("nodes.id"))
    .addColumn("replica_id", id, (c) => c.notNull())
    .addColumn("address", "text")
    .addColumn("behind_nat", "integer", (c) => c.notNull())
    .addColumn("connected_at", "bigint", (c) => c.notNull())
    .execute();
  await db.schema
    .createTable("replica_commands")
    .addColumn("id", serial, serialPk)
    .addColumn("replica_id", id, (c) => c.notNull())
    .addColumn("node_id", id, (c) => c.notNull())
    .addColumn("message", "text", (c) => c.notNull())
    .addColumn("created_at", "bigint", (c) => c.notNull())
    .execute();
  await db.schema
    .createIndex("replica_commands_replica")
    .on("replica_commands")
    .columns(["replica_id", "id"])
    .execute();
}
