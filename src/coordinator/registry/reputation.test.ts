import assert from "node:assert/strict";
import { test, type TestContext } from "node:test";
import { place } from "../../core/placement.ts";
import { DEFAULT_CATALOG_PRICES } from "../../core/pricing.ts";
import { REPUTATION_PRIOR } from "../../core/reputation.ts";
import { forEachDatabase, type DatabaseUnderTest } from "../../../test/support/coordinator.ts";
import { fixtureHardware } from "../../../test/support/devices.ts";
import { openRegistry } from "../../../test/support/registry.ts";
import { Inventory } from "../scheduler/inventory.ts";
import { recordLeaseEnd } from "../../../test/support/leases.ts";
import { appendHistory, type LeaseOutcome } from "./node-history.ts";
import { refreshReputation } from "./reputation.ts";

const DAY_MS = 86_400_000;

/** A registry with `count` available nodes, the scheduler's inventory over it, and the events. */
async function network(db: DatabaseUnderTest, t: TestContext, count: number) {
  const r = await openRegistry(db, t);
  const hardware = await fixtureHardware("rtx4090");
  const nodeIds: string[] = [];
  for (let i = 0; i < count; i++) {
    const gpus = hardware.gpus.map((g) => ({ ...g, uuid: `GPU-rep-${i}-${g.index}` }));
    const { nodeId } = await r.register({
      region: "eu-west",
      zone: "eu-west-a",
      hardware: { ...hardware, gpus },
    });
    const ctx = { actor: "test", reason: "test", nowMs: r.clock.now() };
    await r.lifecycle.apply(nodeId, { type: "connect", verified: true }, ctx);
    nodeIds.push(nodeId);
  }
  const inventory = new Inventory(r.store.db, DEFAULT_CATALOG_PRICES, "catalog", r.events);
  await inventory.load();
  const announced: Array<{ nodeId: string; reputation: number }> = [];
  r.events.on("node:reputation", ({ nodeId, reputation }) =>
    announced.push({ nodeId, reputation }),
  );
  const stored = async (nodeId: string) =>
    (
      await r.store.db
        .selectFrom("nodes")
        .select("reputation")
        .where("id", "=", nodeId)
        .executeTakeFirstOrThrow()
    ).reputation;
  const lease = (nodeId: string, outcome: LeaseOutcome) =>
    recordLeaseEnd(r.store.db, nodeId, outcome, r.clock.now());
  return { r, nodeIds, inventory, announced, stored, lease };
}

forEachDatabase("reputation", (db) => {
  test("a new node starts at the prior, in the store and in the inventory", async (t) => {
    const { nodeIds, inventory, stored } = await network(db, t, 1);
    assert.equal(await stored(nodeIds[0]!), REPUTATION_PRIOR);
    assert.equal(inventory.get(nodeIds[0]!)?.reputation, REPUTATION_PRIOR);
  });

  test("refreshReputation stores a changed score and tells the inventory, once", async (t) => {
    const { r, nodeIds, inventory, announced, stored, lease } = await network(db, t, 2);
    const [bad, good] = nodeIds as [string, string];
    await lease(bad, "lost");
    await lease(bad, "lapsed");
    await lease(good, "completed");
    await lease(good, "drained");
    const deps = { db: r.store.db, events: r.events };
    await refreshReputation(deps, [bad, good], r.clock.now());

    // bad: uptime 15 (new: ½) + completion 30 × 1/4 + failures 15 × ¼ + verification 7.5
    // + slashes 10 × ½ = 38.75; good: 15 + 30 × 2/3 + 15 + 7.5 + 10 = 67.5.
    assert.equal(await stored(bad), 38.8);
    assert.equal(await stored(good), 67.5);
    // In id order.
    assert.deepEqual(
      announced,
      [
        { nodeId: bad, reputation: 38.8 },
        { nodeId: good, reputation: 67.5 },
      ].sort((a, b) => (a.nodeId < b.nodeId ? -1 : 1)),
    );
    assert.equal(inventory.get(bad)?.reputation, 38.8);
    assert.equal(inventory.get(good)?.reputation, 67.5);

    await refreshReputation(deps, [bad, good], r.clock.now());
    assert.equal(announced.length, 2, "an unchanged score is neither written nor announced");

    const placed = place(inventory, { nodes: 2, minReputation: 60 });
    assert.equal(placed.ok, false);
    if (!placed.ok) assert.equal(placed.explanation, "available: 2 → reputation ≥ 60: 1 (need 2)");
  });

  test("a recorded verification refreshes the score at once", async (t) => {
    const { r, nodeIds, stored, inventory } = await network(db, t, 1);
    const nodeId = nodeIds[0]!;
    const ctx = { actor: "coordinator", reason: "benchmark", nowMs: r.clock.now() };
    await r.lifecycle.recordVerification(nodeId, { passed: false, detail: {} }, ctx);
    // verification (0 + 1) / (1 + 2) = ⅓ of 15 instead of ½.
    assert.equal(await stored(nodeId), 60);
    await r.lifecycle.recordVerification(nodeId, { passed: true, detail: {} }, ctx);
    await r.lifecycle.recordVerification(nodeId, { passed: true, detail: {} }, ctx);
    // verification (2 + 1) / (3 + 2) = 0.6 of 15.
    assert.equal(await stored(nodeId), 64);
    assert.equal(inventory.get(nodeId)?.reputation, 64);
  });

  test("the periodic pass recomputes every node, so uptime counts and failures fade", async (t) => {
    const { r, nodeIds, stored, lease, announced } = await network(db, t, 3);
    const t0 = r.clock.now();
    for (const nodeId of nodeIds) await lease(nodeId, "lost");
    // Rows the score ignores: a malformed lease record and other actions.
    const ignored = [
      ["lease-ended", "exploded"],
      ["price", "lost"],
    ] as const;
    for (const [action, outcome] of ignored) {
      const row = { nodeId: nodeIds[0]!, atMs: t0, actor: "test", action, detail: { outcome } };
      await appendHistory(r.store.db, row);
    }
    await r.lifecycle.refreshAllUptime(t0);
    const fresh = await Promise.all(nodeIds.map(stored));
    // uptime 15 + completion 10 + failures 7.5 + verification 7.5 + slashes 5.
    assert.deepEqual(fresh, [45, 45, 45]);

    // 60 days on, online all along: uptime is trusted in full, the failure weighs ¼.
    await r.lifecycle.refreshAllUptime(r.clock.advance(60 * DAY_MS));
    const later = await Promise.all(nodeIds.map(stored));
    // uptime 30 + completion 30 × 1/2.25 + failures 15 × ½^¼ + 7.5 + slashes 10 × ½^¼ = 71.86.
    assert.deepEqual(later, [71.9, 71.9, 71.9]);
    assert.deepEqual(
      announced.slice(-3).map((a) => a.reputation),
      [71.9, 71.9, 71.9],
    );

    // Past the horizon the failure no longer counts at all.
    await r.lifecycle.refreshAllUptime(r.clock.advance(400 * DAY_MS));
    assert.equal(await stored(nodeIds[2]!), 30 + 15 + 15 + 7.5 + 10);
  });
});
