import { createHash, randomBytes } from "node:crypto";
import type { Kysely } from "kysely";
import { ErrorCode, TandemError } from "../../core/errors.ts";
import type { Role } from "../../protocol/accounts.ts";
import { IdPrefix, newId } from "../../protocol/ids.ts";
import type { Database } from "../store/schema.ts";
import { toNumber, toNumberOrNull } from "../store/rows.ts";
import { runInTransaction } from "../store/transaction.ts";

/**
 * Accounts and API keys. A key is 32 random bytes shown once; only its SHA-256 is stored (a slow
 * hash adds nothing for a 256-bit random secret, and lookups must be cheap on every request).
 */
export interface Principal {
  accountId: string;
  apiKeyId: string;
  roles: readonly Role[];
}

export interface IssuedKey {
  apiKeyId: string;
  apiKey: string;
}

const KEY_PREFIX = "tdm_";

export function hashApiKey(apiKey: string): string {
  return createHash("sha256").update(apiKey).digest("hex");
}

export class AccountRegistry {
  constructor(private readonly db: Kysely<Database>) {}

  async createAccount(
    roles: readonly Role[],
    nowMs: number,
  ): Promise<{ accountId: string } & IssuedKey> {
    const accountId = newId(IdPrefix.account, nowMs);
    const key = await runInTransaction(this.db, async (tx) => {
      await tx
        .insertInto("accounts")
        .values({
          id: accountId,
          roles: [...new Set(roles)].sort().join(","),
          created_at: nowMs,
          disabled_at: null,
        })
        .execute();
      return issueKey(tx, accountId, nowMs);
    });
    return { accountId, ...key };
  }

  /** The account behind a presented key, or undefined for an unknown, revoked or disabled one. */
  async authenticate(apiKey: string): Promise<Principal | undefined> {
    if (!apiKey.startsWith(KEY_PREFIX) || apiKey.length > 100) return undefined;
    const row = await this.db
      .selectFrom("api_keys")
      .innerJoin("accounts", "accounts.id", "api_keys.account_id")
      .select(["api_keys.id as keyId", "accounts.id as accountId", "accounts.roles"])
      .where("api_keys.key_hash", "=", hashApiKey(apiKey))
      .where("api_keys.revoked_at", "is", null)
      .where("accounts.disabled_at", "is", null)
      .executeTakeFirst();
    if (row === undefined) return undefined;
    return { accountId: row.accountId, apiKeyId: row.keyId, roles: parseRoles(row.roles) };
  }

  async getAccount(accountId: string) {
    const row = await this.db
      .selectFrom("accounts")
      .selectAll()
      .where("id", "=", accountId)
      .executeTakeFirst();
    if (row === undefined) throw new TandemError(ErrorCode.NOT_FOUND, `no account ${accountId}`);
    return {
      accountId: row.id,
      roles: parseRoles(row.roles),
      createdAtMs: toNumber(row.created_at),
    };
  }

  createApiKey(accountId: string, nowMs: number): Promise<IssuedKey> {
    return issueKey(this.db, accountId, nowMs);
  }

  /** A page of the account's keys, oldest first, after the key id `cursor`. */
  async listApiKeys(accountId: string, page: { limit: number; cursor?: string | undefined }) {
    let query = this.db
      .selectFrom("api_keys")
      .select(["id", "prefix", "created_at", "revoked_at"])
      .where("account_id", "=", accountId)
      .orderBy("id")
      .limit(page.limit + 1);
    if (page.cursor !== undefined) query = query.where("id", ">", page.cursor);
    const rows = await query.execute();
    const items = rows.slice(0, page.limit).map((r) => ({
      id: r.id,
      prefix: r.prefix,
      createdAtMs: toNumber(r.created_at),
      revokedAtMs: toNumberOrNull(r.revoked_at),
    }));
    return { items, nextCursor: rows.length > page.limit ? items.at(-1)!.id : null };
  }

  /** Revokes one of the account's own keys; revoking it again answers the first revocation time. */
  async revokeApiKey(accountId: string, apiKeyId: string, nowMs: number): Promise<number> {
    return runInTransaction(this.db, async (tx) => {
      const row = await tx
        .selectFrom("api_keys")
        .select(["revoked_at"])
        .where("id", "=", apiKeyId)
        .where("account_id", "=", accountId)
        .executeTakeFirst();
      if (row === undefined) throw new TandemError(ErrorCode.NOT_FOUND, `no API key ${apiKeyId}`);
      const revokedAt = toNumberOrNull(row.revoked_at);
      if (revokedAt !== null) return revokedAt;
      await tx
        .updateTable("api_keys")
        .set({ revoked_at: nowMs })
        .where("id", "=", apiKeyId)
        .execute();
      return nowMs;
    });
  }

  /** Creates the first admin account when none exists; answers its key, or undefined if one did. */
  async bootstrapAdmin(nowMs: number): Promise<IssuedKey | undefined> {
    const existing = await this.db
      .selectFrom("accounts")
      .select("id")
      .where("roles", "like", "%admin%")
      .executeTakeFirst();
    if (existing !== undefined) return undefined;
    const { apiKeyId, apiKey } = await this.createAccount(["admin"], nowMs);
    return { apiKeyId, apiKey };
  }
}

async function issueKey(
  db: Kysely<Database>,
  accountId: string,
  nowMs: number,
): Promise<IssuedKey> {
  const apiKey = KEY_PREFIX + randomBytes(32).toString("base64url");
  const apiKeyId = newId(IdPrefix.apiKey, nowMs);
  await db
    .insertInto("api_keys")
    .values({
      id: apiKeyId,
      account_id: accountId,
      key_hash: hashApiKey(apiKey),
      prefix: apiKey.slice(0, 12),
      created_at: nowMs,
      revoked_at: null,
    })
    .execute();
  return { apiKeyId, apiKey };
}

function parseRoles(roles: string): Role[] {
  return roles
    .split(",")
    .filter((r): r is Role => r === "consumer" || r === "supplier" || r === "admin");
}
