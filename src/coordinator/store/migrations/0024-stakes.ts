import { sql, type Kysely } from "kysely";
import type { Dialect } from "../database.ts";
import { dialectTypes } from "./dialect-types.ts";

/**
 * Staked TDM (issue 16, item 3). Each stake is one position: who staked how much on which node.
 * The TDM itself sits in the ledger, on one guarded escrow account per position
 * (`escrow:clu_stake:<stk_…>`), so a position's balance is derived from postings; this table
 * holds what the ledger does not: the node, the staker, the status and its times.
 * - `status`: `active` → `unbonding` (unstaked; still slashable until `withdrawable_at`) →
 *   `withdrawn` (paid back to the staker's wallet).
 * - `amount`: the TDM staked, smallest units, fixed when the position is made.
 * - `create_key` / `unstake_key`: the idempotency keys of the requests that made and unstaked it.
 * `node_commissions`: a node's commission on its rewards, basis points; no row = the default.
 */
export async function up(db: Kysely<unknown>, dialect: Dialect): Promise<void> {
  const { id } = dialectTypes(dialect);
  await db.schema
    .createTable("stakes")
    .addColumn("id", id, (c) => c.primaryKey())
    .addColumn("node_id", id, (c) => c.notNull().references("nodes.id"))
    .addColumn("account_id", id, (c) => c.notNull().references("accounts.id"))
    .addColumn("amount", "bigint", (c) => c.notNull().check(sql`amount > 0`))
    .addColumn("status", "text", (c) =>
      c.notNull().check(sql`status IN ('active', 'unbonding', 'withdrawn')`),
    )
    .addColumn("created_at", "bigint", (c) => c.notNull())
    .addColumn("create_key", "text", (c) => c.notNull().unique())
    .addColumn("unstaked_at", "bigint")
    .addColumn("unstake_key", "text")
    .addColumn("withdrawable_at", "bigint")
    .addColumn("withdrawn_at", "bigint")
    .execute();
  await db.schema.createIndex("stakes_node").on("stakes").columns(["node_id", "status"]).execute();
  await db.schema
    .createIndex("stakes_account")
    .on("stakes")
    .columns(["account_id", "id"])
    .execute();
  await db.schema
    .createTable("node_commissions")
    .addColumn("node_id", id, (c) => c.primaryKey().references("nodes.id"))
    .addColumn("commission_bps", "integer", (c) =>
      c.notNull().check(sql`commission_bps >= 0 AND commission_bps <= 10000`),
    )
    .addColumn("updated_at", "bigint", (c) => c.notNull())
    .execute();
}
