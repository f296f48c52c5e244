import type { Kysely } from "kysely";
import type { Dialect } from "../database.ts";
import { dialectTypes } from "./dialect-types.ts";

/**
 * Each rank's half of its cluster's WireGuard overlay (src/protocol/cluster-network.ts): the
 * public key and endpoint its worker made for the lease, so every peer list can be rebuilt after
 * a coordinator restart or a rank's move. Public material only: private keys never leave workers.
 */
export async function up(db: Kysely<unknown>, dialect: Dialect): Promise<void> {
  const { id } = dialectTypes(dialect);
  await db.schema
    .createTable("rank_networks")
    .addColumn("cluster_id", id, (c) => c.notNull().references("clusters.id"))
    .addColumn("rank", "integer", (c) => c.notNull())
    .addColumn("attempt", "integer", (c) => c.notNull())
    .addColumn("node_id", id, (c) => c.notNull().references("nodes.id"))
    .addColumn("public_key", "text", (c) => c.notNull())
    .addColumn("endpoint_address", "text")
    .addColumn("endpoint_port", "integer", (c) => c.notNull())
    .addColumn("updated_at", "bigint", (c) => c.notNull())
    .addPrimaryKeyConstraint("rank_networks_pk", ["cluster_id", "rank"])
    .execute();
}
