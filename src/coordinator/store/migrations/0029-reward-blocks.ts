import { sql, type Kysely } from "kysely";
import type { Dialect } from "../database.ts";
import { dialectTypes } from "./dialect-types.ts";

/**
 * Reward blocks (issue 16, item 4): one row per emission hour, written once, in the transaction
 * that mints and pays it, so an hour is paid at most once (the primary key) and a block that did
 * not commit left nothing behind.
 * - `reward_blocks.emission`: what the schedule emits that hour; `minted`: what the block minted
 *   (the emission when a node was eligible, else 0: an hour without eligible nodes mints nothing).
 * - `capacity`: Σ the rewarded nodes' proven capacity, milli-TFLOPS FP32.
 * `reward_block_nodes`: every node the block nominated, with its outcome: `reason` null for a
 * rewarded node (its `share`, of which `commission` went to its supplier), else why it was refused.
 */
export async function up(db: Kysely<unknown>, dialect: Dialect): Promise<void> {
  const { id } = dialectTypes(dialect);
  await db.schema
    .createTable("reward_blocks")
    .addColumn("hour", "bigint", (c) => c.primaryKey().check(sql`hour >= 0`))
    .addColumn("starts_at", "bigint", (c) => c.notNull())
    .addColumn("emission", "bigint", (c) => c.notNull().check(sql`emission >= 0`))
    .addColumn("minted", "bigint", (c) => c.notNull().check(sql`minted >= 0`))
    .addColumn("capacity", "bigint", (c) => c.notNull())
    .addColumn("nominated", "integer", (c) => c.notNull())
    .addColumn("rewarded", "integer", (c) => c.notNull())
    .addColumn("transaction_id", "text")
    .addColumn("created_at", "bigint", (c) => c.notNull())
    .execute();
  await db.schema
    .createTable("reward_block_nodes")
    .addColumn("hour", "bigint", (c) => c.notNull())
    .addColumn("node_id", id, (c) => c.notNull())
    .addColumn("account_id", id, (c) => c.notNull())
    .addColumn("reason", "text")
    .addColumn("capacity", "bigint", (c) => c.notNull())
    .addColumn("staked", "bigint", (c) => c.notNull())
    .addColumn("share", "bigint", (c) => c.notNull())
    .addColumn("commission", "bigint", (c) => c.notNull())
    .addPrimaryKeyConstraint("reward_block_nodes_pk", ["hour", "node_id"])
    .execute();
  await db.schema
    .createIndex("reward_block_nodes_node")
    .on("reward_block_nodes")
    .columns(["node_id", "hour"])
    .execute();
}
