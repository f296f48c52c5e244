import type { Kysely } from "kysely";
import type { Dialect } from "../database.ts";
import { dialectTypes } from "./dialect-types.ts";

/**
 * Enrollment tokens (issue 18 item 5): a supplier's single-use, expiring credential that a worker
 * machine registers its device with, so the account's API key never sits on that machine.
 * - Only the token's SHA-256 is stored (like API keys); the token is shown once.
 * - `used_at` and `device_id` are set, in the registration's transaction, by the one registration
 *   that consumed it; the row stays as the record of who enrolled which device when.
 */
export async function up(db: Kysely<unknown>, dialect: Dialect): Promise<void> {
  const { id } = dialectTypes(dialect);
  await db.schema
    .createTable("enrollment_tokens")
    .addColumn("id", id, (c) => c.primaryKey())
    .addColumn("account_id", id, (c) => c.notNull().references("accounts.id"))
    .addColumn("token_hash", "text", (c) => c.notNull().unique())
    .addColumn("created_at", "bigint", (c) => c.notNull())
    .addColumn("expires_at", "bigint", (c) => c.notNull())
    .addColumn("used_at", "bigint")
    .addColumn("device_id", id, (c) => c.references("devices.id"))
    .execute();
  await db.schema
    .createIndex("enrollment_tokens_account")
    .on("enrollment_tokens")
    .columns(["account_id", "id"])
    .execute();
}
