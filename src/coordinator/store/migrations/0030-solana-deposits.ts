import { sql, type Kysely } from "kysely";
import type { Dialect } from "../database.ts";
import { dialectTypes } from "./dialect-types.ts";

/**
 * The Solana rail's deposits (issue 17).
 * - `solana_deposit_addresses`: each account's deposit owner (a key derived from the treasury
 *   secret and the account id) and, per currency, the owner's associated token account for that
 *   currency's mint: the address a payer sends to. Written once; the watcher reads the owners.
 * - `solana_watch_cursors`: per token account watched, the newest signature already handled at
 *   the watcher's commitment, so a beat asks the chain only for what is newer.
 * - `solana_deposits`: one row per (signature, instruction) that moved tokens into a watched
 *   account, credited (`reason` null, `transaction_id` its ledger transaction) or refused with a
 *   reason (unknown mint, below the minimum): recorded, never lost, never credited twice (the key).
 */
export async function up(db: Kysely<unknown>, dialect: Dialect): Promise<void> {
  const { id } = dialectTypes(dialect);
  await db.schema
    .createTable("solana_deposit_addresses")
    .addColumn("account_id", id, (c) => c.notNull())
    .addColumn("currency", "text", (c) => c.notNull())
    .addColumn("owner", "text", (c) => c.notNull())
    .addColumn("mint", "text", (c) => c.notNull())
    .addColumn("address", "text", (c) => c.notNull().unique())
    .addColumn("created_at", "bigint", (c) => c.notNull())
    .addPrimaryKeyConstraint("solana_deposit_addresses_pk", ["account_id", "currency"])
    .execute();
  await db.schema
    .createIndex("solana_deposit_addresses_owner")
    .on("solana_deposit_addresses")
    .column("owner")
    .execute();
  await db.schema
    .createTable("solana_watch_cursors")
    .addColumn("address", "text", (c) => c.primaryKey())
    .addColumn("last_signature", "text", (c) => c.notNull())
    .addColumn("updated_at", "bigint", (c) => c.notNull())
    .execute();
  await db.schema
    .createTable("solana_deposits")
    .addColumn("signature", "text", (c) => c.notNull())
    .addColumn("instruction", "text", (c) => c.notNull())
    .addColumn("slot", "bigint", (c) => c.notNull())
    .addColumn("address", "text", (c) => c.notNull())
    .addColumn("account_id", id, (c) => c.notNull())
    .addColumn("mint", "text", (c) => c.notNull())
    .addColumn("currency", "text")
    .addColumn("amount", "text", (c) => c.notNull())
    .addColumn("reason", "text")
    .addColumn("transaction_id", "text")
    .addColumn("created_at", "bigint", (c) => c.notNull())
    .addPrimaryKeyConstraint("solana_deposits_pk", ["signature", "instruction"])
    .addCheckConstraint(
      "solana_deposits_outcome",
      sql`(reason is null) = (transaction_id is not null)`,
    )
    .execute();
  await db.schema
    .createIndex("solana_deposits_account")
    .on("solana_deposits")
    .columns(["account_id", "created_at"])
    .execute();
}
