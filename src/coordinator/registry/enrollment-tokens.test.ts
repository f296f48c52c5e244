import assert from "node:assert/strict";
import { test } from "node:test";
import { ErrorCode, TandemError } from "../../core/errors.ts";
import { dumpDatabase, forEachDatabase } from "../../../test/support/coordinator.ts";
import {
  fixtureHardware,
  newDeviceKey,
  signedRegistration,
} from "../../../test/support/devices.ts";
import { ADMIN_VIEWER, openRegistry, type Registry } from "../../../test/support/registry.ts";
import { EnrollmentTokens } from "./enrollment-tokens.ts";

const HOUR_MS = 3_600_000;

const refusedWith = (code: ErrorCode) => (e: unknown) =>
  e instanceof TandemError && e.code === code;

async function newRegistration(zone = "eu-west-a") {
  const device = newDeviceKey();
  const request = signedRegistration(device, {
    region: "eu-west",
    zone,
    hardware: await fixtureHardware("none"),
  });
  return { device, request };
}

async function tokenRow(r: Registry, tokenId: string) {
  return r.store.db
    .selectFrom("enrollment_tokens")
    .selectAll()
    .where("id", "=", tokenId)
    .executeTakeFirstOrThrow();
}

forEachDatabase("enrollment tokens", (db) => {
  test("a token enrolls one device for its account and records which, when", async (t) => {
    const r = await openRegistry(db, t);
    const tokens = new EnrollmentTokens(r.store.db);
    const issued = await tokens.issue(r.supplierId, HOUR_MS, r.clock.now());
    assert.match(issued.token, /^tdme_[A-Za-z0-9_-]{43}$/);
    assert.match(issued.tokenId, /^enr_[0-9a-z]{26}$/);
    assert.equal(issued.expiresAtMs, r.clock.now() + HOUR_MS);
    // Only the hash is kept: no table holds the token itself.
    assert.doesNotMatch(JSON.stringify(await dumpDatabase(r.store)), new RegExp(issued.token));

    const enrolledAtMs = r.clock.advance(60_000);
    const { device, request } = await newRegistration();
    const enrolled = await r.devices.enroll(issued.token, request, enrolledAtMs);
    assert.equal(enrolled.created, true);

    const stored = await r.store.db
      .selectFrom("devices")
      .selectAll()
      .where("id", "=", enrolled.deviceId)
      .executeTakeFirstOrThrow();
    assert.equal(stored.account_id, r.supplierId);
    assert.equal(stored.public_key, device.publicKey);

    const row = await tokenRow(r, issued.tokenId);
    assert.equal(Number(row.used_at), enrolledAtMs);
    assert.equal(row.device_id, enrolled.deviceId);
    assert.deepEqual(await tokens.list(r.supplierId, { limit: 50 }), {
      items: [
        {
          tokenId: issued.tokenId,
          createdAtMs: enrolledAtMs - 60_000,
          expiresAtMs: issued.expiresAtMs,
          usedAtMs: enrolledAtMs,
          deviceId: enrolled.deviceId,
        },
      ],
      nextCursor: null,
    });

    const [registered] = (await r.nodes.history(enrolled.nodeId, 10, undefined, ADMIN_VIEWER))
      .items;
    assert.equal(registered?.action, "registered");
    assert.equal(registered?.actor, `account:${r.supplierId}`);
    assert.equal(
      (registered?.detail as { enrollmentTokenId?: string } | undefined)?.enrollmentTokenId,
      issued.tokenId,
    );
  });

  test("used, unknown and expired tokens are refused with their codes and change nothing", async (t) => {
    const r = await openRegistry(db, t);
    const tokens = new EnrollmentTokens(r.store.db);
    const used = await tokens.issue(r.supplierId, HOUR_MS, r.clock.now());
    await r.devices.enroll(used.token, (await newRegistration()).request, r.clock.now());
    const expiring = await tokens.issue(r.supplierId, 60_000, r.clock.now());
    const unknown = `tdme_${"A".repeat(43)}`;

    const before = await dumpDatabase(r.store);
    const { request } = await newRegistration();
    await assert.rejects(
      r.devices.enroll(used.token, request, r.clock.now()),
      refusedWith(ErrorCode.ENROLLMENT_TOKEN_USED),
    );
    await assert.rejects(
      r.devices.enroll(unknown, request, r.clock.now()),
      refusedWith(ErrorCode.ENROLLMENT_TOKEN_UNKNOWN),
    );
    // A token lives until its expiry, exclusive.
    r.clock.advance(60_000);
    await assert.rejects(
      r.devices.enroll(expiring.token, request, r.clock.now()),
      refusedWith(ErrorCode.ENROLLMENT_TOKEN_EXPIRED),
    );
    assert.deepEqual(await dumpDatabase(r.store), before);

    // One millisecond earlier it would have enrolled.
    r.clock.advance(-1);
    const enrolled = await r.devices.enroll(expiring.token, request, r.clock.now());
    assert.equal(enrolled.created, true);
  });

  test("a registration refused inside its transaction leaves the token unused", async (t) => {
    const r = await openRegistry(db, t);
    const tokens = new EnrollmentTokens(r.store.db);
    const { accountId: other } = await r.accounts.createAccount(["supplier"], r.clock.now());
    // The device key is already another account's: the registration is a CONFLICT.
    const { request } = await newRegistration();
    await r.devices.register(other, request, r.clock.now());
    const issued = await tokens.issue(r.supplierId, HOUR_MS, r.clock.now());
    const before = await dumpDatabase(r.store);
    await assert.rejects(
      r.devices.enroll(issued.token, request, r.clock.now()),
      refusedWith(ErrorCode.CONFLICT),
    );
    assert.deepEqual(await dumpDatabase(r.store), before);
    assert.equal((await tokenRow(r, issued.tokenId)).used_at, null);
  });

  test("workers racing one token: exactly one enrolls, the others are ENROLLMENT_TOKEN_USED", async (t) => {
    const r = await openRegistry(db, t);
    const tokens = new EnrollmentTokens(r.store.db);
    const issued = await tokens.issue(r.supplierId, HOUR_MS, r.clock.now());
    const requests = await Promise.all(Array.from({ length: 8 }, () => newRegistration()));
    const outcomes = await Promise.allSettled(
      requests.map(({ request }) => r.devices.enroll(issued.token, request, r.clock.now())),
    );
    const won = outcomes.filter((o) => o.status === "fulfilled");
    const lost = outcomes.filter((o) => o.status === "rejected");
    assert.equal(won.length, 1);
    for (const o of lost) assert.ok(refusedWith(ErrorCode.ENROLLMENT_TOKEN_USED)(o.reason));
    const devices = await r.store.db.selectFrom("devices").select("id").execute();
    assert.deepEqual(
      devices.map((d) => d.id),
      [won[0]!.value.deviceId],
    );
    assert.equal((await tokenRow(r, issued.tokenId)).device_id, won[0]!.value.deviceId);
  });

  test("enrolling again with a key already enrolled to the same account answers its ids", async (t) => {
    const r = await openRegistry(db, t);
    const tokens = new EnrollmentTokens(r.store.db);
    const { request } = await newRegistration();
    const first = await r.devices.enroll(
      (await tokens.issue(r.supplierId, HOUR_MS, r.clock.now())).token,
      request,
      r.clock.now(),
    );
    const second = await tokens.issue(r.supplierId, HOUR_MS, r.clock.now());
    const again = await r.devices.enroll(second.token, request, r.clock.now());
    assert.deepEqual(again, { ...first, created: false });
    assert.equal((await tokenRow(r, second.tokenId)).device_id, first.deviceId);
  });
});
