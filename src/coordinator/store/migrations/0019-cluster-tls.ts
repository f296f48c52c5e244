import type { Kysely } from "kysely";
import type { Dialect } from "../database.ts";
import { dialectTypes } from "./dialect-types.ts";

/**
 * A cluster's TLS material for its engine (Dask, Ray): the CA's certificate and the one leaf
 * certificate and key every node of the cluster presents (src/coordinator/scheduler/cluster-tls.ts).
 * Made at the cluster's first start and kept so a failover's replacement gets the same; the CA's
 * key is never stored (no second leaf can be signed). The row goes when the cluster ends.
 */
export async function up(db: Kysely<unknown>, dialect: Dialect): Promise<void> {
  const { id } = dialectTypes(dialect);
  await db.schema
    .createTable("cluster_tls")
    .addColumn("cluster_id", id, (c) => c.primaryKey().references("clusters.id"))
    .addColumn("ca_cert", "text", (c) => c.notNull())
    .addColumn("cert", "text", (c) => c.notNull())
    .addColumn("key", "text", (c) => c.notNull())
    .addColumn("not_after", "bigint", (c) => c.notNull())
    .addColumn("created_at", "bigint", (c) => c.notNull())
    .execute();
}
