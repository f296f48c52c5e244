/**
 * Worker credentials (issue 18 item 5), over HTTP on SQLite and PostgreSQL: a supplier makes a
 * single-use enrollment token with its API key; a device registers with it, then signs its own
 * requests (`Authorization: Device …`), and that credential can do nothing but re-register itself.
 */
import assert from "node:assert/strict";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { deviceAuthorization } from "../src/protocol/device-auth.ts";
import { startWorker } from "../src/worker/main.ts";
import {
  assertError,
  dumpDatabase,
  forEachDatabase,
  httpRequest,
  ManualClock,
  type TestCoordinator,
} from "./support/coordinator.ts";
import {
  fixtureHardware,
  newDeviceKey,
  signedRegistration,
  type TestDevice,
} from "./support/devices.ts";

async function registrationOf(device: TestDevice, zone = "eu-west-a") {
  return signedRegistration(device, {
    region: "eu-west",
    zone,
    hardware: await fixtureHardware("none"),
  });
}

/** `method path` signed by `device` as `deviceId` at `atMs`. */
function signedBy(
  device: TestDevice,
  deviceId: string,
  method: string,
  path: string,
  atMs: number,
) {
  return { authorization: deviceAuthorization(device.privateKey, deviceId, method, path, atMs) };
}

async function enrolledDevice(tc: TestCoordinator, supplierKey: string) {
  const { token } = await tc.client(supplierKey).createEnrollmentToken();
  const device = newDeviceKey();
  const enrolled = await httpRequest(tc.url, "POST", "/v1/devices", {
    body: { ...(await registrationOf(device)), enrollmentToken: token },
  });
  assert.equal(enrolled.status, 201, enrolled.text);
  const { deviceId, nodeId } = enrolled.json as { deviceId: string; nodeId: string };
  return { device, deviceId, nodeId, token };
}

forEachDatabase("worker credentials", (db) => {
  test("a supplier's token enrolls one device, once; bad tokens are refused with their codes", async (t) => {
    const clock = new ManualClock(Date.UTC(2026, 0, 1));
    const tc = await db.startCoordinator({ clock });
    t.after(() => tc.close());
    const supplier = await tc.signUp(["supplier"]);
    const consumer = await tc.signUp(["consumer"]);

    const made = await httpRequest(tc.url, "POST", "/v1/enrollment-tokens", {
      apiKey: supplier.apiKey,
      body: { ttlSeconds: 600 },
    });
    assert.equal(made.status, 201, made.text);
    const issued = made.json as { tokenId: string; token: string; expiresAt: string };
    assert.equal(issued.expiresAt, new Date(clock.now() + 600_000).toISOString());
    assertError(
      await httpRequest(tc.url, "POST", "/v1/enrollment-tokens", { apiKey: consumer.apiKey }),
      403,
      "FORBIDDEN",
      "a consumer",
    );
    assertError(await httpRequest(tc.url, "POST", "/v1/enrollment-tokens"), 401, "UNAUTHENTICATED");
    for (const ttlSeconds of [59, 86_401, 1.5, "3600"])
      assertError(
        await httpRequest(tc.url, "POST", "/v1/enrollment-tokens", {
          apiKey: supplier.apiKey,
          body: { ttlSeconds },
        }),
        400,
        "VALIDATION_FAILED",
        `ttl ${ttlSeconds}`,
      );

    const device = newDeviceKey();
    const body = { ...(await registrationOf(device)), enrollmentToken: issued.token };
    const enrolled = await httpRequest(tc.url, "POST", "/v1/devices", { body });
    assert.equal(enrolled.status, 201, enrolled.text);
    const { deviceId } = enrolled.json as { deviceId: string };

    const before = await dumpDatabase(tc.coordinator.store);
    const other = { ...(await registrationOf(newDeviceKey())), enrollmentToken: issued.token };
    assertError(
      await httpRequest(tc.url, "POST", "/v1/devices", { body: other }),
      401,
      "ENROLLMENT_TOKEN_USED",
    );
    const unknown = { ...other, enrollmentToken: `tdme_${"x".repeat(43)}` };
    assertError(
      await httpRequest(tc.url, "POST", "/v1/devices", { body: unknown }),
      401,
      "ENROLLMENT_TOKEN_UNKNOWN",
    );
    const { token: expiring } = await supplier.client.createEnrollmentToken(60);
    clock.advance(60_000);
    const late = { ...other, enrollmentToken: expiring };
    assertError(
      await httpRequest(tc.url, "POST", "/v1/devices", { body: late }),
      401,
      "ENROLLMENT_TOKEN_EXPIRED",
    );
    // No credential at all; a token and a key at once.
    const bare = await registrationOf(newDeviceKey());
    assertError(
      await httpRequest(tc.url, "POST", "/v1/devices", { body: bare }),
      401,
      "UNAUTHENTICATED",
    );
    const { token: fresh } = await supplier.client.createEnrollmentToken();
    const both = await httpRequest(tc.url, "POST", "/v1/devices", {
      apiKey: supplier.apiKey,
      body: { ...other, enrollmentToken: fresh },
    });
    assertError(both, 400, "VALIDATION_FAILED", "token and key");
    const after = await dumpDatabase(tc.coordinator.store);
    // Only the two tokens made since changed anything.
    assert.deepEqual({ ...after, enrollment_tokens: [] }, { ...before, enrollment_tokens: [] });

    // Three tokens, one used (two were made in the same millisecond: their order is the ids').
    const audit = await supplier.client.listEnrollmentTokens();
    assert.deepEqual(audit.items.map((i) => [i.tokenId === issued.tokenId, i.deviceId]).sort(), [
      [false, null],
      [false, null],
      [true, deviceId],
    ]);
  });

  test("a device re-registers by its own signature, which can do nothing else", async (t) => {
    const clock = new ManualClock(Date.UTC(2026, 0, 1));
    const tc = await db.startCoordinator({ clock });
    t.after(() => tc.close());
    const supplier = await tc.signUp(["supplier", "consumer"]);
    const { device, deviceId, nodeId } = await enrolledDevice(tc, supplier.apiKey);

    const moved = await registrationOf(device, "eu-west-b");
    const again = await httpRequest(tc.url, "POST", "/v1/devices", {
      headers: signedBy(device, deviceId, "POST", "/v1/devices", clock.now()),
      body: moved,
    });
    assert.equal(again.status, 200, again.text);
    assert.deepEqual(again.json, { deviceId, nodeId, created: false });
    assert.equal((await tc.client().getNode(nodeId)).zone, "eu-west-b");

    // Stale or future signatures, another route's signature, another device's key: refused.
    for (const [label, headers] of [
      ["6 minutes old", signedBy(device, deviceId, "POST", "/v1/devices", clock.now() - 360_000)],
      ["6 minutes ahead", signedBy(device, deviceId, "POST", "/v1/devices", clock.now() + 360_000)],
      ["signed for GET", signedBy(device, deviceId, "GET", "/v1/devices", clock.now())],
      ["another key", signedBy(newDeviceKey(), deviceId, "POST", "/v1/devices", clock.now())],
    ] as const)
      assertError(
        await httpRequest(tc.url, "POST", "/v1/devices", { headers, body: moved }),
        401,
        "UNAUTHENTICATED",
        label,
      );
    /** A registration of `body` signed now by the enrolled device. */
    const reregister = (body: unknown) =>
      httpRequest(tc.url, "POST", "/v1/devices", {
        headers: signedBy(device, deviceId, "POST", "/v1/devices", clock.now()),
        body,
      });
    // A device cannot enroll a new key for its account.
    const stranger = await registrationOf(newDeviceKey());
    assertError(await reregister(stranger), 403, "FORBIDDEN", "a new key");

    // Everything an account does is refused to a device's credential.
    for (const [method, path, body] of [
      ["GET", "/v1/wallet", undefined],
      [
        "POST",
        "/v1/wallet/withdrawals",
        { currency: "USDC", amount: "1.000000", destination: "x" },
      ],
      ["GET", "/v1/clusters", undefined],
      ["POST", "/v1/clusters", { kind: "batch" }],
      ["GET", "/v1/accounts/me", undefined],
      ["POST", "/v1/api-keys", undefined],
      ["POST", "/v1/enrollment-tokens", undefined],
      ["PUT", `/v1/nodes/${nodeId}/price`, { pricePerHour: "1.000000" }],
      ["POST", `/v1/devices/${deviceId}/revoke`, undefined],
    ] as const) {
      const response = await httpRequest(tc.url, method, path, {
        headers: signedBy(device, deviceId, method, path, clock.now()),
        ...(body === undefined ? {} : { body }),
      });
      assertError(response, 403, "FORBIDDEN", `${method} ${path}`);
    }

    // Revoked, its signature is refused too.
    await tc.client(tc.adminKey).revokeDevice(deviceId, "stolen");
    assertError(await reregister(moved), 401, "UNAUTHENTICATED", "revoked");
  });

  test("a worker whose coordinator no longer knows its device enrolls again with a new token", async (t) => {
    const home = await mkdtemp(join(tmpdir(), "tandem-reenroll-"));
    t.after(() => rm(home, { recursive: true, force: true }));
    const hardware = await fixtureHardware("none");
    const start = async (tc: TestCoordinator, enrollmentToken?: string) =>
      startWorker(
        {
          home,
          coordinatorUrl: tc.url,
          region: "eu-west",
          zone: "eu-west-a",
          ...(enrollmentToken === undefined ? {} : { enrollmentToken }),
        },
        { probe: { probe: () => Promise.resolve(hardware) }, log: () => undefined },
      );
    const first = await db.startCoordinator();
    t.after(() => first.close());
    const firstSupplier = await first.signUp(["supplier"]);
    const enrolled = await start(first, (await firstSupplier.client.createEnrollmentToken()).token);
    await enrolled.stop();
    await first.close();

    // A fresh coordinator: the saved device id means nothing there.
    const second = await db.startCoordinator();
    t.after(() => second.close());
    await assert.rejects(start(second), { code: "UNAUTHENTICATED" });
    const supplier = await second.signUp(["supplier"]);
    const { token } = await supplier.client.createEnrollmentToken();
    const again = await start(second, token);
    t.after(() => again.stop());
    assert.notEqual(again.deviceId, enrolled.deviceId);
    const audit = await supplier.client.listEnrollmentTokens();
    assert.deepEqual(
      audit.items.map((i) => i.deviceId),
      [again.deviceId],
    );
  });
});
