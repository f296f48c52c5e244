import type { Kysely } from "kysely";
import type { Dialect } from "../database.ts";

/**
 * Reputation (src/core/reputation.ts): each node's score, cached on its row so the node list can
 * filter and show it; and an index that finds just the history rows the score comes from
 * (`lease-ended`, `verification-*`, within the formula's horizon) for a batch of nodes, without
 * reading their status rows.
 *
 * Existing nodes start at the formula's prior (62.5, a node without history) until the next
 * periodic refresh recomputes them.
 */
export async function up(db: Kysely<unknown>, _dialect: Dialect): Promise<void> {
  await db.schema
    .alterTable("nodes")
    .addColumn("reputation", "double precision", (c) => c.notNull().defaultTo(62.5))
    .execute();
  await db.schema
    .createIndex("node_history_node_action_at")
    .on("node_history")
    .columns(["node_id", "action", "at"])
    .execute();
}
