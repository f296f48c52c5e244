import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { readFile, rm, stat } from "node:fs/promises";
import { join } from "node:path";
import { test } from "node:test";
import { ErrorCode, TandemError } from "../../core/errors.ts";
import { dumpDatabase, forEachDatabase } from "../../../test/support/coordinator.ts";
import { openRegistry } from "../../../test/support/registry.ts";

const sha256 = (text: string) => createHash("sha256").update(text).digest("hex");

forEachDatabase("accounts and API keys", (db) => {
  test("a new account's key is ≥ 32 random bytes, shown once, stored only as its hash", async (t) => {
    const r = await openRegistry(db, t);
    const a = await r.accounts.createAccount(["consumer", "supplier", "consumer"], r.clock.now());
    const b = await r.accounts.createAccount(["consumer"], r.clock.now());

    assert.match(a.accountId, /^acct_[0-9a-z]{26}$/);
    assert.match(a.apiKey, /^tdm_[A-Za-z0-9_-]+$/);
    assert.ok(
      Buffer.from(a.apiKey.slice(4), "base64url").length >= 32,
      "key shorter than 32 bytes",
    );
    assert.notEqual(a.apiKey, b.apiKey);

    const rows = await r.store.db.selectFrom("api_keys").selectAll().execute();
    const row = rows.find((k) => k.id === a.apiKeyId);
    assert.equal(row?.key_hash, sha256(a.apiKey));
    assert.equal(row?.prefix, a.apiKey.slice(0, 12));
    // The secret part of the key appears nowhere in the database.
    const secret = a.apiKey.slice(12);
    assert.ok(!JSON.stringify(await dumpDatabase(r.store)).includes(secret), "key stored in clear");

    assert.deepEqual(await r.accounts.authenticate(a.apiKey), {
      accountId: a.accountId,
      apiKeyId: a.apiKeyId,
      roles: ["consumer", "supplier"],
    });
    assert.deepEqual((await r.accounts.getAccount(a.accountId)).roles, ["consumer", "supplier"]);
  });

  test("unknown, malformed and oversized keys are refused", async (t) => {
    const r = await openRegistry(db, t);
    const { apiKey } = await r.accounts.createAccount(["consumer"], r.clock.now());
    for (const key of [
      "",
      "tdm_",
      apiKey.slice(0, -1),
      apiKey + "x",
      apiKey.replace("tdm_", "tdx_"),
      sha256(apiKey),
      "tdm_" + "a".repeat(200),
      "tdm_' OR 1=1 --",
    ]) {
      assert.equal(await r.accounts.authenticate(key), undefined, key);
    }
  });

  test("a revoked key is refused; the account's other keys still work", async (t) => {
    const r = await openRegistry(db, t);
    const first = await r.accounts.createAccount(["supplier"], r.clock.now());
    const second = await r.accounts.createApiKey(first.accountId, r.clock.now());
    const revokedAt = r.clock.advance(1000);

    assert.equal(
      await r.accounts.revokeApiKey(first.accountId, first.apiKeyId, revokedAt),
      revokedAt,
    );
    assert.equal(await r.accounts.authenticate(first.apiKey), undefined);
    assert.equal((await r.accounts.authenticate(second.apiKey))?.apiKeyId, second.apiKeyId);

    // Revoking again answers the first revocation, not a new one.
    r.clock.advance(1000);
    assert.equal(
      await r.accounts.revokeApiKey(first.accountId, first.apiKeyId, r.clock.now()),
      revokedAt,
    );
    const keys = await r.accounts.listApiKeys(first.accountId, { limit: 50 });
    assert.deepEqual(
      keys.items.map((k) => [k.id, k.revokedAtMs]),
      [
        [first.apiKeyId, revokedAt],
        [second.apiKeyId, null],
      ].sort((x, y) => String(x[0]).localeCompare(String(y[0]))),
    );
  });

  test("nobody revokes another account's key", async (t) => {
    const r = await openRegistry(db, t);
    const owner = await r.accounts.createAccount(["consumer"], r.clock.now());
    const other = await r.accounts.createAccount(["consumer"], r.clock.now());
    await assert.rejects(
      r.accounts.revokeApiKey(other.accountId, owner.apiKeyId, r.clock.now()),
      (e: unknown) => e instanceof TandemError && e.code === ErrorCode.NOT_FOUND,
    );
    assert.notEqual(await r.accounts.authenticate(owner.apiKey), undefined);
  });

  test("the first start writes admin.key (0600) once; restarts never make another admin", async (t) => {
    const first = await db.startCoordinator();
    t.after(() => first.close());
    const keyFile = join(first.home, "admin.key");
    const written = await stat(keyFile);
    assert.equal(written.mode & 0o777, 0o600);
    assert.equal((await readFile(keyFile, "utf8")).trim(), first.adminKey);
    assert.deepEqual((await first.client(first.adminKey).me()).roles, ["admin"]);

    const second = await first.restart();
    t.after(() => second.close());
    assert.equal(second.coordinator.createdAdminKey, undefined);
    assert.equal((await readFile(keyFile, "utf8")).trim(), first.adminKey);
    assert.equal((await stat(keyFile)).mtimeMs, written.mtimeMs);

    // Even with the file gone, the existing admin account is not replaced by a new one.
    await rm(keyFile);
    const third = await second.restart();
    t.after(() => third.close());
    assert.equal(third.coordinator.createdAdminKey, undefined);
    await assert.rejects(stat(keyFile), { code: "ENOENT" });
    const admins = await third.coordinator.store.db
      .selectFrom("accounts")
      .select("id")
      .where("roles", "like", "%admin%")
      .execute();
    assert.equal(admins.length, 1);
    assert.deepEqual((await third.client(first.adminKey).me()).roles, ["admin"]);
  });
});
