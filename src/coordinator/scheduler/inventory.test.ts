import assert from "node:assert/strict";
import { test, type TestContext } from "node:test";
import { place } from "../../core/placement.ts";
import { DEFAULT_CATALOG_PRICES } from "../../core/pricing.ts";
import { forEachDatabase, type DatabaseUnderTest } from "../../../test/support/coordinator.ts";
import { fixtureHardware } from "../../../test/support/devices.ts";
import { openRegistry } from "../../../test/support/registry.ts";
import { Inventory } from "./inventory.ts";

/** Registered, verified and connected nodes, one per zone of eu-west, and the inventory over them. */
async function network(db: DatabaseUnderTest, t: TestContext) {
  const r = await openRegistry(db, t);
  const hardware = await fixtureHardware("rtx4090");
  const nodeIds: string[] = [];
  for (const zone of ["eu-west-a", "eu-west-b", "eu-west-c"]) {
    const gpus = hardware.gpus.map((g) => ({ ...g, uuid: `GPU-inv-${zone}-${g.index}` }));
    const { nodeId } = await r.register({
      region: "eu-west",
      zone,
      hardware: { ...hardware, gpus },
    });
    await apply(nodeId, { type: "connect", verified: true });
    nodeIds.push(nodeId);
  }
  const inventory = new Inventory(r.store.db, DEFAULT_CATALOG_PRICES, "catalog", r.events);
  await inventory.load();
  async function apply(
    nodeId: string,
    event: { type: "connect"; verified: boolean } | { type: "disconnect" },
  ) {
    await r.lifecycle.apply(nodeId, event, { actor: "test", reason: "test", nowMs: r.clock.now() });
  }
  /** Waits until the inventory's background refresh (on the status event) has run. */
  async function settled(nodeId: string, available: boolean) {
    for (let tries = 0; inventory.get(nodeId)?.available !== available; tries++) {
      if (tries > 10_000) assert.fail(`the inventory never saw ${nodeId} available=${available}`);
      await new Promise((resolve) => setTimeout(resolve, 1));
    }
  }
  const inPartitions = () =>
    [...inventory.partitions()].flatMap((p) => p.nodes.map((n) => n.nodeId)).sort();
  return { nodeIds, inventory, apply, settled, inPartitions };
}

forEachDatabase("inventory", (db) => {
  test("moves a node out of its placement partition and back as its status changes", async (t) => {
    const { nodeIds, inventory, apply, settled, inPartitions } = await network(db, t);
    const [a, b, c] = nodeIds as [string, string, string];
    assert.deepEqual(inPartitions(), [a, b, c].sort());
    assert.equal(place(inventory, { nodes: 3, gpuModel: "rtx-4090", spreadZones: true }).ok, true);

    await apply(b, { type: "disconnect" });
    await settled(b, false);
    assert.deepEqual(inPartitions(), [a, c].sort());
    const refused = place(inventory, { nodes: 3, gpuModel: "rtx-4090" });
    assert.equal(refused.ok, false);
    assert.match(!refused.ok ? refused.explanation : "", /^available: 2 → rtx-4090: 2 \(need 3\)$/);

    await apply(b, { type: "connect", verified: true });
    await settled(b, true);
    assert.deepEqual(inPartitions(), [a, b, c].sort());
    const placed = place(inventory, { nodes: 3, gpuModel: "rtx-4090", spreadZones: true });
    assert.ok(placed.ok);
    assert.equal(new Set(placed.nodes.map((n) => n.zone)).size, 3);
  });

  test("a node marked taken leaves placement at once, before any event", async (t) => {
    const { nodeIds, inventory, inPartitions } = await network(db, t);
    const [a, b, c] = nodeIds as [string, string, string];
    inventory.markTaken([a]);
    assert.deepEqual(inPartitions(), [b, c].sort());
    const placed = place(inventory, { nodes: 2 });
    assert.ok(placed.ok);
    assert.ok(!placed.nodes.some((n) => n.nodeId === a));
    assert.equal(place(inventory, { nodes: 3 }).ok, false);
    await inventory.load();
    assert.deepEqual(inPartitions(), [a, b, c].sort(), "a reload reads the store again");
  });
});
