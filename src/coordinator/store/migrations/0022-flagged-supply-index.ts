import { sql, type Kysely } from "kysely";
import type { Dialect } from "../database.ts";

/**
 * A partial covering index of the flagged nodes (a GPU UUID seen on two devices, …), for the
 * network counts' split of verified from connected supply: they subtract the flagged nodes per
 * (status, GPU model) from the totals of `nodes_status_gpu_model_count`. Flagged nodes are few,
 * so the index is small and the extra count reads only them, never the table (`flags` is a column
 * of the index too: SQLite covers a query only with every column it names).
 */
export async function up(db: Kysely<unknown>, _dialect: Dialect): Promise<void> {
  await sql`create index nodes_flagged_status_gpu_model_count
    on nodes (status, gpu_model, gpu_count, flags) where flags <> ''`.execute(db);
}
