import { randomBytes } from "node:crypto";
import type { Kysely } from "kysely";
import { ErrorCode, TandemError } from "../../core/errors.ts";
import { ENROLLMENT_TOKEN_PREFIX } from "../../protocol/enrollment.ts";
import { IdPrefix, newId } from "../../protocol/ids.ts";
import type { Database } from "../store/schema.ts";
import { toNumber } from "../store/rows.ts";
import { hashApiKey } from "./accounts.ts";

/**
 * Enrollment tokens: how a worker machine registers its device without the supplier's API key.
 * The supplier asks for one (with its key, on its own machine); the worker presents it once, and
 * the registration that creates the device consumes it in the same transaction. A token is 32
 * random bytes shown once; like an API key only its SHA-256 is stored.
 *
 * Single use under races: consuming is one conditional UPDATE (`used_at IS NULL AND expires_at >
 * now`). On PostgreSQL a second transaction blocks on the row until the first commits, then finds
 * the condition false; SQLite runs one write transaction at a time. Either way one registration
 * wins and the other is refused with ENROLLMENT_TOKEN_USED and rolls back, changing nothing.
 */
export interface IssuedEnrollmentToken {
  tokenId: string;
  token: string;
  expiresAtMs: number;
}

/** The account a consumed token enrolls for. */
export interface ConsumedEnrollmentToken {
  tokenId: string;
  accountId: string;
}

export class EnrollmentTokens {
  constructor(private readonly db: Kysely<Database>) {}

  async issue(accountId: string, ttlMs: number, nowMs: number): Promise<IssuedEnrollmentToken> {
    const token = ENROLLMENT_TOKEN_PREFIX + randomBytes(32).toString("base64url");
    const tokenId = newId(IdPrefix.enrollmentToken, nowMs);
    const expiresAtMs = nowMs + ttlMs;
    await this.db
      .insertInto("enrollment_tokens")
      .values({
        id: tokenId,
        account_id: accountId,
        token_hash: hashApiKey(token),
        created_at: nowMs,
        expires_at: expiresAtMs,
        used_at: null,
        device_id: null,
      })
      .execute();
    return { tokenId, token, expiresAtMs };
  }

  /**
   * A page of an account's tokens, newest first, before the token id `cursor`: when each was made,
   * expires, was used and by which device.
   */
  async list(accountId: string, page: { limit: number; cursor?: string | undefined }) {
    let query = this.db
      .selectFrom("enrollment_tokens")
      .select(["id", "created_at", "expires_at", "used_at", "device_id"])
      .where("account_id", "=", accountId)
      .orderBy("id", "desc")
      .limit(page.limit + 1);
    if (page.cursor !== undefined) query = query.where("id", "<", page.cursor);
    const rows = await query.execute();
    const items = rows.slice(0, page.limit).map((r) => ({
      tokenId: r.id,
      createdAtMs: toNumber(r.created_at),
      expiresAtMs: toNumber(r.expires_at),
      usedAtMs: r.used_at === null ? null : toNumber(r.used_at),
      deviceId: r.device_id,
    }));
    return { items, nextCursor: rows.length > page.limit ? items.at(-1)!.tokenId : null };
  }
}

/**
 * Consumes `token` inside the registration's transaction `tx`, or throws the typed refusal
 * (unknown, already used, expired), which rolls the registration back.
 */
export async function consumeEnrollmentToken(
  tx: Kysely<Database>,
  token: string,
  nowMs: number,
): Promise<ConsumedEnrollmentToken> {
  const tokenHash = hashApiKey(token);
  const consumed = await tx
    .updateTable("enrollment_tokens")
    .set({ used_at: nowMs })
    .where("token_hash", "=", tokenHash)
    .where("used_at", "is", null)
    .where("expires_at", ">", nowMs)
    .returning(["id", "account_id"])
    .executeTakeFirst();
  if (consumed !== undefined) return { tokenId: consumed.id, accountId: consumed.account_id };
  const row = await tx
    .selectFrom("enrollment_tokens")
    .select(["id", "used_at", "expires_at"])
    .where("token_hash", "=", tokenHash)
    .executeTakeFirst();
  if (row === undefined)
    throw new TandemError(ErrorCode.ENROLLMENT_TOKEN_UNKNOWN, "unknown enrollment token");
  if (row.used_at !== null)
    throw new TandemError(
      ErrorCode.ENROLLMENT_TOKEN_USED,
      "this enrollment token has already been used; ask the supplier for a new one",
      { details: { tokenId: row.id, usedAt: new Date(toNumber(row.used_at)).toISOString() } },
    );
  throw new TandemError(
    ErrorCode.ENROLLMENT_TOKEN_EXPIRED,
    "this enrollment token has expired; ask the supplier for a new one",
    { details: { tokenId: row.id, expiredAt: new Date(toNumber(row.expires_at)).toISOString() } },
  );
}

/** Records which device a consumed token enrolled (same transaction, after the device's insert). */
export async function recordEnrolledDevice(
  tx: Kysely<Database>,
  tokenId: string,
  deviceId: string,
): Promise<void> {
  await tx
    .updateTable("enrollment_tokens")
    .set({ device_id: deviceId })
    .where("id", "=", tokenId)
    .execute();
}
