import type { Kysely } from "kysely";
import type { Dialect } from "../database.ts";

/**
 * A covering index for `GET /v1/network/stats`, which counts nodes and sums GPUs by status and GPU
 * model. Without it the database reads every node row, hardware JSON included, and sorts them for
 * the GROUP BY: 580 ms at 100,000 nodes on SQLite (bench/RESULTS.md). With it, SQLite reads the
 * small index in group order and never touches the table; PostgreSQL can do an index-only scan.
 */
export async function up(db: Kysely<unknown>, _dialect: Dialect): Promise<void> {
  await db.schema
    .createIndex("nodes_status_gpu_model_count")
    .on("nodes")
    .columns(["status", "gpu_model", "gpu_count"])
    .execute();
}
