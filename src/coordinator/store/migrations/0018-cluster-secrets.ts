import type { Kysely } from "kysely";
import type { Dialect } from "../database.ts";
import { dialectTypes } from "./dialect-types.ts";

/**
 * Sealed job secrets (src/protocol/sealed-secrets.ts): one box per cluster, node and secret name,
 * sealed on the consumer's machine to that node's device key. The coordinator stores and forwards
 * these boxes and can open none of them; the names a cluster expects live in its spec.
 */
export async function up(db: Kysely<unknown>, dialect: Dialect): Promise<void> {
  const { id } = dialectTypes(dialect);
  await db.schema
    .createTable("cluster_secrets")
    .addColumn("cluster_id", id, (c) => c.notNull().references("clusters.id"))
    .addColumn("node_id", id, (c) => c.notNull().references("nodes.id"))
    .addColumn("name", "text", (c) => c.notNull())
    .addColumn("box", "text", (c) => c.notNull())
    .addColumn("created_at", "bigint", (c) => c.notNull())
    .addPrimaryKeyConstraint("cluster_secrets_pk", ["cluster_id", "node_id", "name"])
    .execute();
}
