import assert from "node:assert/strict";
import { test } from "node:test";
import { forEachDatabase } from "../../../test/support/coordinator.ts";
import { fixtureHardware } from "../../../test/support/devices.ts";
import { openRegistry, type Registry } from "../../../test/support/registry.ts";
import { toNumber, toNumberOrNull } from "../store/rows.ts";

const HOUR_MS = 3_600_000;
const DAY_MS = 24 * HOUR_MS;

async function intervalsOf(r: Registry, nodeId: string) {
  const rows = await r.store.db
    .selectFrom("node_intervals")
    .select(["start_ms", "end_ms"])
    .where("node_id", "=", nodeId)
    .orderBy("start_ms")
    .execute();
  return rows.map((row) => [toNumber(row.start_ms), toNumberOrNull(row.end_ms)]);
}

async function lastSeenOf(r: Registry, nodeId: string) {
  const row = await r.store.db
    .selectFrom("nodes")
    .select("last_seen_at")
    .where("id", "=", nodeId)
    .executeTakeFirstOrThrow();
  return toNumberOrNull(row.last_seen_at);
}

forEachDatabase("node lifecycle", (db) => {
  test("every transition appends history with from, to, actor, reason and time", async (t) => {
    const r = await openRegistry(db, t);
    const hardware = await fixtureHardware("rtx4090");
    const { nodeId, deviceId } = await r.register({
      region: "eu-west",
      zone: "eu-west-a",
      hardware,
    });
    const worker = `device:${deviceId}`;
    const t0 = r.clock.now();
    const steps = [
      [{ type: "connect", verified: false }, worker, "worker connected", "offline", "unverified"],
      [{ type: "verify" }, "coordinator", "benchmark passed", "unverified", "available"],
      [{ type: "lease" }, "coordinator", "cluster clu_x", "available", "leased"],
      [{ type: "release" }, "coordinator", "cluster ended", "leased", "available"],
      [{ type: "standby" }, "coordinator", "shadow", "available", "standby"],
      [{ type: "lease" }, "coordinator", "failover", "standby", "leased"],
      [{ type: "disconnect" }, "coordinator", "missed 3 heartbeats", "leased", "offline"],
      [{ type: "connect", verified: true }, worker, "worker connected", "offline", "available"],
      [{ type: "revoke" }, "account:acct_admin", "stolen", "available", "revoked"],
    ] as const;
    for (const [i, [event, actor, reason, from, to]] of steps.entries()) {
      const result = await r.lifecycle.apply(nodeId, event, {
        actor,
        reason,
        nowMs: t0 + (i + 1) * 1000,
      });
      assert.deepEqual(result, { ok: true, from, to }, `${event.type} from ${from}`);
    }
    const history = (await r.nodes.history(nodeId, 100)).items.slice(1);
    assert.deepEqual(
      history.map((h) => [h.action, h.from, h.to, h.actor, h.detail, h.at]),
      steps.map(([, actor, reason, from, to], i) => [
        "status",
        from,
        to,
        actor,
        { reason },
        new Date(t0 + (i + 1) * 1000).toISOString(),
      ]),
    );
    assert.deepEqual(
      r.published.map((e) => e.payload),
      steps.map(([, , reason, from, to], i) => ({
        nodeId,
        from,
        to,
        reason,
        atMs: t0 + (i + 1) * 1000,
      })),
    );
    const node = await r.nodes.get(nodeId);
    assert.equal(node.status, "revoked");
    assert.equal(node.verified, true);
  });

  test("a transition that does not apply changes nothing and says why", async (t) => {
    const r = await openRegistry(db, t);
    const hardware = await fixtureHardware("none");
    const { nodeId } = await r.register({ region: "us-east", zone: "us-east-a", hardware });
    const ctx = { actor: "coordinator", reason: "test", nowMs: r.clock.now() };

    for (const event of [{ type: "verify" }, { type: "disconnect" }, { type: "lease" }] as const) {
      assert.deepEqual(await r.lifecycle.apply(nodeId, event, ctx), {
        ok: false,
        code: "INVALID_TRANSITION",
        from: "offline",
      });
    }
    await r.lifecycle.apply(nodeId, { type: "revoke" }, ctx);
    assert.deepEqual(await r.lifecycle.apply(nodeId, { type: "connect", verified: true }, ctx), {
      ok: false,
      code: "INVALID_TRANSITION",
      from: "revoked",
    });
    assert.deepEqual(
      await r.lifecycle.apply("node_00000000000000000000000000", { type: "revoke" }, ctx),
      { ok: false, code: "NOT_FOUND", from: null },
    );
    const history = (await r.nodes.history(nodeId, 100)).items;
    assert.deepEqual(
      history.map((h) => h.to),
      ["offline", "revoked"],
    );
    assert.equal(r.published.length, 1);
    assert.deepEqual(await intervalsOf(r, nodeId), []);
  });

  test("online intervals open on connect and close at the last sign of life", async (t) => {
    const r = await openRegistry(db, t);
    const hardware = await fixtureHardware("rtx3060ti");
    const { nodeId, deviceId } = await r.register({
      region: "eu-west",
      zone: "eu-west-a",
      hardware,
    });
    const t0 = r.clock.now();
    const worker = { actor: `device:${deviceId}`, reason: "worker connected" };

    await r.lifecycle.apply(nodeId, { type: "connect", verified: false }, { ...worker, nowMs: t0 });
    assert.deepEqual(await intervalsOf(r, nodeId), [[t0, null]]);
    assert.equal(await lastSeenOf(r, nodeId), t0);

    // Silent since t0 + 1 h, noticed 6 s later: the interval ends at the last beat.
    await r.lifecycle.apply(
      nodeId,
      { type: "disconnect" },
      {
        actor: "coordinator",
        reason: "missed",
        nowMs: t0 + HOUR_MS + 6000,
        lastSeenMs: t0 + HOUR_MS,
      },
    );
    assert.deepEqual(await intervalsOf(r, nodeId), [[t0, t0 + HOUR_MS]]);
    assert.equal(await lastSeenOf(r, nodeId), t0 + HOUR_MS);

    await r.lifecycle.apply(
      nodeId,
      { type: "connect", verified: false },
      { ...worker, nowMs: t0 + 2 * HOUR_MS },
    );
    // Statuses inside the online set keep the interval open.
    await r.lifecycle.apply(
      nodeId,
      { type: "verify" },
      { actor: "coordinator", reason: "ok", nowMs: t0 + 3 * HOUR_MS },
    );
    await r.lifecycle.apply(
      nodeId,
      { type: "lease" },
      { actor: "coordinator", reason: "c", nowMs: t0 + 3 * HOUR_MS },
    );
    assert.deepEqual(await intervalsOf(r, nodeId), [
      [t0, t0 + HOUR_MS],
      [t0 + 2 * HOUR_MS, null],
    ]);
    // A revocation closes it at once.
    await r.lifecycle.apply(
      nodeId,
      { type: "revoke" },
      { actor: "admin", reason: "r", nowMs: t0 + 4 * HOUR_MS },
    );
    assert.deepEqual(await intervalsOf(r, nodeId), [
      [t0, t0 + HOUR_MS],
      [t0 + 2 * HOUR_MS, t0 + 4 * HOUR_MS],
    ]);
  });

  test("uptime comes from the recorded intervals, on transitions and on refresh", async (t) => {
    const r = await openRegistry(db, t);
    const hardware = await fixtureHardware("rtx4090");
    const { nodeId } = await r.register({ region: "eu-west", zone: "eu-west-a", hardware });
    const t0 = r.clock.now();
    const ctx = (nowMs: number, lastSeenMs?: number) => ({
      actor: "coordinator",
      reason: "test",
      nowMs,
      ...(lastSeenMs === undefined ? {} : { lastSeenMs }),
    });

    await r.lifecycle.apply(nodeId, { type: "connect", verified: true }, ctx(t0));
    await r.lifecycle.apply(nodeId, { type: "disconnect" }, ctx(t0 + 2 * HOUR_MS, t0 + HOUR_MS));
    // Computed at the transition: online 1 h of the 2 h since registration.
    assert.deepEqual((await r.nodes.get(nodeId)).uptime, { "24h": 0.5, "7d": 0.5, "30d": 0.5 });

    await r.lifecycle.apply(nodeId, { type: "connect", verified: true }, ctx(t0 + 2 * HOUR_MS));
    await r.lifecycle.refreshAllUptime(t0 + 4 * HOUR_MS);
    assert.deepEqual((await r.nodes.get(nodeId)).uptime, { "24h": 0.75, "7d": 0.75, "30d": 0.75 });

    await r.lifecycle.apply(nodeId, { type: "disconnect" }, ctx(t0 + 4 * HOUR_MS));
    await r.lifecycle.refreshAllUptime(t0 + 3 * DAY_MS);
    const later = (await r.nodes.get(nodeId)).uptime;
    assert.equal(later["24h"], 0);
    assert.equal(later["7d"], (3 * HOUR_MS) / (3 * DAY_MS));
    assert.equal(later["30d"], later["7d"]);

    await r.lifecycle.refreshAllUptime(t0 + 31 * DAY_MS);
    assert.deepEqual((await r.nodes.get(nodeId)).uptime, { "24h": 0, "7d": 0, "30d": 0 });
  });

  test("concurrent transitions of one node never overwrite each other", async (t) => {
    const r = await openRegistry(db, t);
    const hardware = await fixtureHardware("none");
    const ctx = (reason: string) => ({ actor: "test", reason, nowMs: r.clock.now() });
    for (let i = 0; i < 15; i++) {
      const { nodeId, deviceId } = await r.register({
        region: "eu-west",
        zone: "eu-west-a",
        hardware,
      });
      await r.lifecycle.apply(nodeId, { type: "connect", verified: false }, ctx("connect"));
      // A verification result lands while an admin revokes the device, and two leases race.
      const [verified, , leaseA, leaseB] = await Promise.all([
        r.lifecycle.apply(nodeId, { type: "verify" }, ctx("verified")),
        r.devices.revoke(deviceId, "admin", "revoked", r.clock.now()),
        r.lifecycle.apply(nodeId, { type: "lease" }, ctx("lease a")),
        r.lifecycle.apply(nodeId, { type: "lease" }, ctx("lease b")),
      ]);
      assert.equal((await r.nodes.get(nodeId)).status, "revoked", `node ${i}`);
      assert.ok(!(leaseA.ok && leaseB.ok), `node ${i} leased twice`);
      void verified;
      // The history is one unbroken chain: each transition starts where the previous ended.
      const statuses = (await r.nodes.history(nodeId, 100)).items.filter((h) => h.to !== null);
      for (let k = 1; k < statuses.length; k++) {
        assert.equal(
          statuses[k]!.from,
          statuses[k - 1]!.to,
          `node ${i}: ${JSON.stringify(statuses)}`,
        );
      }
      assert.equal(statuses.at(-1)!.to, "revoked");
      assert.equal(statuses.filter((h) => h.to === "revoked").length, 1);
    }
  });
});
