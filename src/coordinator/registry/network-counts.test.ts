import assert from "node:assert/strict";
import { test, type TestContext } from "node:test";
import type { NodeEvent } from "../../core/node-status.ts";
import { forEachDatabase, type DatabaseUnderTest } from "../../../test/support/coordinator.ts";
import {
  fixtureGpus,
  hardwareWith,
  newDeviceKey,
  signedRegistration,
  type GpuFixture,
} from "../../../test/support/devices.ts";
import { openRegistry } from "../../../test/support/registry.ts";
import { explain } from "../../../test/support/explain.ts";
import { NetworkCounts, bucketQuery, countBuckets, statsFromBuckets } from "./network-counts.ts";

const FIXTURES: GpuFixture[] = ["h100x8", "rtx4090", "rtx3060ti", "none"];
const STEPS: NodeEvent[] = [
  { type: "connect", verified: false },
  { type: "verify" },
  { type: "lease" },
  { type: "release" },
  { type: "standby" },
  { type: "disconnect" },
  { type: "connect", verified: true },
];

async function setup(db: DatabaseUnderTest, t: TestContext, recountIntervalMs = 3_600_000) {
  const r = await openRegistry(db, t);
  const errors: unknown[] = [];
  const counts = new NetworkCounts(r.store.db, r.events, {
    recountIntervalMs,
    onError: (e) => errors.push(e),
  });
  await counts.start();
  t.after(() => counts.stop());
  const counted = async () => statsFromBuckets(await countBuckets(r.store.db));
  const at = () => ({ actor: "test", reason: "test", nowMs: r.clock.advance(1000) });
  /** Node `i`; with `copyOf`, one reporting node `copyOf`'s GPU UUIDs (both get flagged). */
  const register = async (i: number, copyOf = i) => {
    const gpus = (await fixtureGpus(FIXTURES[copyOf % 4]!)).map((g) => ({
      ...g,
      uuid: `G-${copyOf}-${g.index}`,
    }));
    return (
      await r.register({ region: "eu-west", zone: "eu-west-a", hardware: hardwareWith(gpus) })
    ).nodeId;
  };
  return { r, counts, errors, counted, at, register };
}

forEachDatabase("network counts", (db) => {
  test("follow registrations, status changes, metadata and revocation exactly", async (t) => {
    const { r, counts, errors, counted, at, register } = await setup(db, t);
    assert.deepEqual((await counts.stats()).nodes, {
      total: 0,
      online: 0,
      verified: 0,
      byStatus: {},
    });
    const ids: string[] = [];
    for (let i = 0; i < 12; i++) {
      ids.push(await register(i));
      assert.deepEqual(await counts.stats(), await counted(), `after registration ${i}`);
    }
    // Two copies of node 0's H100s and one of node 1's RTX 4090: four flagged nodes.
    for (const copyOf of [0, 0, 1]) ids.push(await register(ids.length, copyOf));
    assert.deepEqual(await counts.stats(), await counted(), "after the copies");
    let sawFlaggedOnline = false;
    for (let step = 0; step < 90; step++) {
      const nodeId = ids[(step * 7) % ids.length]!;
      await r.lifecycle.apply(nodeId, STEPS[(step * 3) % STEPS.length]!, at());
      const stats = await counts.stats();
      assert.deepEqual(stats, await counted(), `after step ${step}`);
      const verifiedStatuses = ["available", "leased", "standby"].map(
        (s) => stats.nodes.byStatus[s] ?? 0,
      );
      const proven = verifiedStatuses.reduce((a, b) => a + b, 0);
      assert.ok(stats.nodes.verified <= proven, `after step ${step}`);
      sawFlaggedOnline ||= stats.nodes.verified < proven;
    }
    assert.ok(sawFlaggedOnline, "a flagged node was online past unverified, and not counted");
    const device = newDeviceKey();
    const first = hardwareWith(await fixtureGpus("rtx4090"));
    const reg = (hardware: typeof first) =>
      r.devices.register(
        r.supplierId,
        signedRegistration(device, { region: "eu-west", zone: "eu-west-a", hardware }),
        r.clock.now(),
      );
    const { nodeId, deviceId } = await reg(first);
    await r.lifecycle.apply(nodeId, { type: "connect", verified: false }, at());
    await reg(hardwareWith(await fixtureGpus("h100x8")));
    const stats = await counts.stats();
    assert.deepEqual(stats, await counted(), "after a metadata change");
    await r.devices.revoke(deviceId, "admin", "test", r.clock.now());
    assert.deepEqual(await counts.stats(), await counted(), "after revocation");
    assert.deepEqual(errors, []);
  });

  test("stay exact through concurrent status changes", async (t) => {
    const { r, counts, errors, counted, at, register } = await setup(db, t);
    const ids = await Promise.all(Array.from({ length: 16 }, (_, i) => register(i)));
    const moves = ids.map(async (id, i) => {
      for (const event of STEPS.slice(0, 2 + (i % 5))) await r.lifecycle.apply(id, event, at());
    });
    const readers = Array.from({ length: 20 }, () => counts.stats());
    await Promise.all([...moves, ...readers]);
    assert.deepEqual(await counts.stats(), await counted());
    assert.ok((await counts.stats()).nodes.online > 0);
    assert.deepEqual(errors, []);
  });

  test("the timer's recount picks up a change no event announced", async (t) => {
    const { r, counts, counted, register } = await setup(db, t, 20);
    await register(0);
    const before = await counts.stats();
    // As another replica would: the row changes here, the event goes out elsewhere.
    await r.store.db.updateTable("nodes").set({ status: "revoked" }).execute();
    const expected = await counted();
    assert.notDeepEqual(before, expected);
    for (let i = 0; i < 500; i++) {
      if (JSON.stringify(await counts.stats()) === JSON.stringify(expected)) break;
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
    assert.deepEqual(await counts.stats(), expected);
  });

  test("a recount counts from two indexes: SQLite covers both, PostgreSQL scans no table", async (t) => {
    const { r } = await setup(db, t);
    for (const [flaggedOnly, index] of [
      [false, "nodes_status_gpu_model_count"],
      [true, "nodes_flagged_status_gpu_model_count"],
    ] as const) {
      const query = bucketQuery(r.store.db, flaggedOnly).compile();
      const plan = await explain(r.store.db, db.kind, query);
      if (db.kind === "sqlite")
        assert.match(plan, new RegExp(`USING COVERING INDEX ${index}\\b`), plan);
      else {
        assert.match(
          plan,
          new RegExp(`(Index Only Scan using|Bitmap Index Scan on) ${index}\\b`),
          plan,
        );
        assert.doesNotMatch(plan, /Seq Scan/, plan);
      }
    }
  });
});
