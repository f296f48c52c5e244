/**
 * The worker WebSocket (`/v1/workers/connect`) on SQLite and PostgreSQL: challenge–response
 * authentication refuses garbage, unknown devices, replayed and foreign signatures; revocation
 * closes an open connection (4403) and refuses the key from then on; a silent worker goes offline
 * after the missed heartbeats, its uptime interval ending at its last beat.
 */
import assert from "node:assert/strict";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { toNumber, toNumberOrNull } from "../src/coordinator/store/rows.ts";
import { CloseCode } from "../src/protocol/worker-messages.ts";
import { startWorker } from "../src/worker/main.ts";
import {
  ManualClock,
  dumpDatabase,
  forEachDatabase,
  httpRequest,
  type DatabaseUnderTest,
  type TestCoordinator,
} from "./support/coordinator.ts";
import {
  connectWorker,
  fixtureHardware,
  heartbeat,
  newDeviceKey,
  openWorkerSocket,
  signedRegistration,
  withTimeout,
} from "./support/devices.ts";

const HEARTBEAT_MS = 2000;

/** A coordinator on a manual clock (nothing goes offline unless the test moves time) and one device. */
async function withDevice(db: DatabaseUnderTest, t: { after(fn: () => Promise<void>): void }) {
  const clock = new ManualClock();
  const tc = await db.startCoordinator({ clock, config: { heartbeatIntervalMs: HEARTBEAT_MS } });
  t.after(() => tc.close());
  const supplier = await tc.signUp(["supplier"]);
  const device = newDeviceKey();
  const body = signedRegistration(device, {
    region: "eu-west",
    zone: "eu-west-a",
    hardware: await fixtureHardware("none"),
  });
  const response = await httpRequest(tc.url, "POST", "/v1/devices", {
    apiKey: supplier.apiKey,
    body,
  });
  assert.equal(response.status, 201);
  const registered = response.json as { deviceId: string; nodeId: string };
  return { tc, clock, device, ...registered };
}

async function nodeStatus(tc: TestCoordinator, nodeId: string) {
  return (await tc.client().getNode(nodeId)).status;
}

forEachDatabase("worker channel", (db) => {
  test("garbage closes the socket 4400; anything but auth first closes it 4401", async (t) => {
    const { tc, nodeId } = await withDevice(db, t);
    const before = await dumpDatabase(tc.coordinator.store);
    const garbage: unknown[] = [
      "not json",
      "{}",
      '{"type":"auth"}',
      '{"type":"auth","deviceId":"dev_x","signature":"x"}',
      '{"type":"shell","cmd":"rm -rf /"}',
      "' OR 1=1 --",
      "\u0000",
      JSON.stringify({ type: "heartbeat", seq: -1, utilization: {} }),
    ];
    for (const message of garbage) {
      const ws = await openWorkerSocket(tc.url);
      ws.send(message);
      assert.equal((await ws.closed()).code, CloseCode.badMessage, String(message));
    }
    const binary = await openWorkerSocket(tc.url);
    binary.socket.send(Buffer.from([0xde, 0xad, 0xbe, 0xef]), { binary: true });
    assert.equal((await binary.closed()).code, CloseCode.badMessage);

    const early = await openWorkerSocket(tc.url);
    early.send(heartbeat(0));
    assert.equal((await early.closed()).code, CloseCode.authFailed);

    assert.equal(await nodeStatus(tc, nodeId), "offline");
    assert.deepEqual(await dumpDatabase(tc.coordinator.store), before);
    assert.equal((await tc.client().health()).connectedWorkers, 0);
  });

  test("an unknown device, a foreign key and a replayed signature are refused 4401", async (t) => {
    const { tc, deviceId, nodeId, device } = await withDevice(db, t);
    const before = await dumpDatabase(tc.coordinator.store);

    const unknown = await openWorkerSocket(tc.url);
    unknown.auth("dev_00000000000000000000000000", device.privateKey);
    assert.equal((await unknown.closed()).code, CloseCode.authFailed);

    const foreign = await openWorkerSocket(tc.url);
    foreign.auth(deviceId, newDeviceKey().privateKey);
    assert.equal((await foreign.closed()).code, CloseCode.authFailed);
    assert.deepEqual(await dumpDatabase(tc.coordinator.store), before);

    // A valid auth message, captured from one connection, is worthless on another: new nonce.
    const first = await openWorkerSocket(tc.url);
    const captured = first.auth(deviceId, device.privateKey);
    assert.equal((await first.next()).type, "welcome");
    const replay = await openWorkerSocket(tc.url);
    assert.notEqual(replay.nonce, first.nonce);
    replay.send(captured);
    assert.equal((await replay.closed()).code, CloseCode.authFailed);
    // The replay did not disturb the real connection.
    assert.equal(first.socket.readyState, first.socket.OPEN);
    assert.equal((await tc.client().health()).connectedWorkers, 1);
    assert.equal(await nodeStatus(tc, nodeId), "unverified");

    const metrics = await (await fetch(new URL("/metrics", tc.url))).text();
    assert.match(metrics, /^tandem_worker_auth_failures_total 3$/m);
  });

  test("a small-order device key is refused at registration and on the channel", async (t) => {
    const { tc } = await withDevice(db, t);
    const supplier = await tc.signUp(["supplier"]);
    // The identity point as key and R = identity, S = 0 as signature "verify" any message under
    // plain RFC 8032 equations (node:crypto accepted both): whoever knew the device id was it.
    const identityKey = Buffer.from("01" + "00".repeat(31), "hex").toString("base64url");
    const trivialSignature = Buffer.from("01" + "00".repeat(63), "hex").toString("base64url");
    const fields = {
      region: "eu-west",
      zone: "eu-west-a",
      hardware: await fixtureHardware("none"),
    };
    const before = await dumpDatabase(tc.coordinator.store);
    const response = await httpRequest(tc.url, "POST", "/v1/devices", {
      apiKey: supplier.apiKey,
      body: { publicKey: identityKey, ...fields, signature: trivialSignature },
    });
    assert.equal(response.status, 400);
    const error = (response.json as { error: { code: string; message: string } }).error;
    assert.equal(error.code, "VALIDATION_FAILED");
    assert.match(error.message, /small-order/);
    assert.deepEqual(await dumpDatabase(tc.coordinator.store), before);

    // A device stored with such a key before this check existed cannot authenticate with it.
    const weak = await tc
      .client(supplier.apiKey)
      .registerDevice(signedRegistration(newDeviceKey(), fields));
    await tc.coordinator.store.db
      .updateTable("devices")
      .set({ public_key: identityKey })
      .where("id", "=", weak.deviceId)
      .execute();
    const socket = await openWorkerSocket(tc.url);
    socket.send({ type: "auth", deviceId: weak.deviceId, signature: trivialSignature });
    assert.equal((await socket.closed()).code, CloseCode.authFailed);
  });

  test("a newer connection of the same device replaces the older (4409)", async (t) => {
    const { tc, deviceId, device } = await withDevice(db, t);
    const older = await connectWorker(tc.url, deviceId, device.privateKey);
    const newer = await connectWorker(tc.url, deviceId, device.privateKey);
    assert.equal((await older.closed()).code, CloseCode.replaced);
    assert.equal(newer.socket.readyState, newer.socket.OPEN);
    assert.equal((await tc.client().health()).connectedWorkers, 1);
  });

  test("revoking a device closes its open connection 4403 within 1 s and refuses its key", async (t) => {
    const { tc, deviceId, nodeId, device } = await withDevice(db, t);
    const ws = await connectWorker(tc.url, deviceId, device.privateKey);
    ws.send(heartbeat(0));
    assert.equal(await nodeStatus(tc, nodeId), "unverified");

    const closed = ws.closed();
    const startedMs = performance.now();
    const revoked = await tc.client(tc.adminKey).revokeDevice(deviceId, "compromised");
    assert.equal(revoked.status, "revoked");
    const { code } = await closed;
    const elapsedMs = performance.now() - startedMs;
    assert.equal(code, CloseCode.revoked);
    assert.ok(elapsedMs < 1000, `closed ${elapsedMs.toFixed(0)} ms after the revocation`);

    assert.equal(await nodeStatus(tc, nodeId), "revoked");
    assert.equal((await tc.client().health()).connectedWorkers, 0);
    // A valid signature from the revoked key no longer opens a session.
    for (let i = 0; i < 2; i++) {
      const again = await openWorkerSocket(tc.url);
      again.auth(deviceId, device.privateKey);
      assert.equal((await again.closed()).code, CloseCode.revoked);
    }
    assert.equal(await nodeStatus(tc, nodeId), "revoked");
    const history = await tc.client(tc.adminKey).nodeHistory(nodeId);
    const last = history.items.at(-1)!;
    assert.deepEqual(
      [last.from, last.to, last.detail["reason"]],
      ["unverified", "revoked", "compromised"],
    );
    assert.match(last.actor, /^account:acct_/, "an admin sees which account revoked it");
    const shown = (await tc.client().nodeHistory(nodeId)).items.at(-1)!;
    assert.equal(shown.actor, "account", "the public history names no account");
  });

  test("a worker started as a user starts it is disconnected for good by revocation", async (t) => {
    const tc = await db.startCoordinator();
    t.after(() => tc.close());
    const supplier = await tc.signUp(["supplier"]);
    const home = await mkdtemp(join(tmpdir(), "tandem-worker-"));
    t.after(() => rm(home, { recursive: true, force: true }));
    const hardware = await fixtureHardware("none");
    const logs: string[] = [];
    const worker = await startWorker(
      {
        home,
        coordinatorUrl: tc.url,
        enrollmentToken: (await supplier.client.createEnrollmentToken()).token,
        region: "us-east",
        zone: "us-east-b",
        reconnectBaseMs: 10,
        reconnectMaxMs: 100,
      },
      { probe: { probe: () => Promise.resolve(hardware) }, log: (m) => logs.push(m) },
    );
    t.after(() => worker.stop());
    await withTimeout(
      new Promise<void>((resolve) => worker.link.once("connected", () => resolve())),
      "the worker to connect",
    );
    assert.notEqual(await nodeStatus(tc, worker.nodeId), "offline");

    const disconnected = withTimeout(
      new Promise<number>((resolve) =>
        worker.link.once("disconnected", ({ code }) => resolve(code)),
      ),
      "the worker to be disconnected",
    );
    const revoked = withTimeout(
      new Promise<void>((resolve) => worker.link.once("revoked", () => resolve())),
      "the worker to learn it is revoked",
    );
    await tc.client(tc.adminKey).revokeDevice(worker.deviceId);
    assert.equal(await disconnected, CloseCode.revoked);
    await revoked;
    assert.equal(await nodeStatus(tc, worker.nodeId), "revoked");
    assert.equal((await tc.client().health()).connectedWorkers, 0);
  });

  test("a silent worker goes offline after 3 missed heartbeats; its interval ends at the last beat", async (t) => {
    const { tc, clock, deviceId, nodeId, device } = await withDevice(db, t);
    const connectedAt = clock.now();
    const ws = await connectWorker(tc.url, deviceId, device.privateKey);
    assert.equal(await nodeStatus(tc, nodeId), "unverified");

    // One beat 1.5 s later, then silence.
    const lastBeatAt = clock.advance(1500);
    ws.send(heartbeat(0));
    await withTimeout(
      (async () => {
        while (tc.coordinator.gateway.detector.lastPayload(nodeId) === undefined) {
          await new Promise((resolve) => setImmediate(resolve));
        }
      })(),
      "the heartbeat to arrive",
    );

    // Just short of the deadline nothing happens.
    clock.set(lastBeatAt + 3 * HEARTBEAT_MS - 1);
    await tc.coordinator.gateway.sweep();
    assert.equal(await nodeStatus(tc, nodeId), "unverified");

    const closed = ws.closed();
    clock.set(lastBeatAt + 3 * HEARTBEAT_MS + 250);
    await tc.coordinator.gateway.sweep();
    const node = await tc.client().getNode(nodeId);
    assert.equal(node.status, "offline");
    assert.equal(node.lastSeenAt, new Date(lastBeatAt).toISOString());
    const offline = (await tc.client().nodeHistory(nodeId)).items.filter(
      (h) => h.to === "offline" && h.from !== null,
    );
    assert.equal(offline.length, 1);
    assert.deepEqual(
      [offline[0]!.from, offline[0]!.actor, offline[0]!.at],
      ["unverified", "coordinator", new Date(clock.now()).toISOString()],
    );
    assert.match(String(offline[0]!.detail["reason"]), /missed 3 heartbeats/);

    const intervals = await tc.coordinator.store.db
      .selectFrom("node_intervals")
      .select(["start_ms", "end_ms"])
      .where("node_id", "=", nodeId)
      .execute();
    assert.deepEqual(
      intervals.map((i) => [toNumber(i.start_ms), toNumberOrNull(i.end_ms)]),
      [[connectedAt, lastBeatAt]],
    );
    // The coordinator drops the dead connection, and a second sweep changes nothing.
    await closed;
    assert.equal((await tc.client().health()).connectedWorkers, 0);
    const settled = await dumpDatabase(tc.coordinator.store);
    clock.advance(10 * HEARTBEAT_MS);
    await tc.coordinator.gateway.sweep();
    assert.deepEqual(await dumpDatabase(tc.coordinator.store), settled);

    // It comes back with a new connection and a new interval.
    const back = await connectWorker(tc.url, deviceId, device.privateKey);
    assert.equal(await nodeStatus(tc, nodeId), "unverified");
    back.socket.close();
  });
});
