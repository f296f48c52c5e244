import type { Kysely } from "kysely";

/**
 * The node list sorts by 30-day uptime and by reputation (issue 6) with keyset paging: each gets
 * an index in that order with the id as tie-breaker, so a page reads `limit` index entries rather
 * than sorting the whole table (status, model, region and zone have theirs since 0001).
 */
export async function up(db: Kysely<unknown>): Promise<void> {
  for (const column of ["uptime_30d", "reputation"]) {
    await db.schema.createIndex(`nodes_${column}_id`).on("nodes").columns([column, "id"]).execute();
  }
}
