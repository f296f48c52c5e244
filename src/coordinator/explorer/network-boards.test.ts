import assert from "node:assert/strict";
import { test } from "node:test";
import { DEFAULT_CATALOG_PRICES } from "../../core/pricing.ts";
import { forEachDatabase } from "../../../test/support/coordinator.ts";
import { fixtureGpus, hardwareWith, type GpuFixture } from "../../../test/support/devices.ts";
import { openRegistry } from "../../../test/support/registry.ts";
import { marketFigures, priceBoard, regionBoard } from "./network-boards.ts";
import { TtlCache } from "./ttl-cache.ts";

test("market figures: lowest and lower-middle price, the catalog's for nodes without their own", () => {
  assert.deepEqual(marketFigures([], 0, 390_000n), {
    nodes: 0,
    minPerGpuHour: "0.390000",
    medianPerGpuHour: "0.390000",
  });
  assert.deepEqual(marketFigures([300_000n, 500_000n], 3, 390_000n), {
    nodes: 3,
    minPerGpuHour: "0.300000",
    medianPerGpuHour: "0.390000",
  });
  assert.deepEqual(marketFigures([700_000n, 100_000n, 200_000n, 900_000n], 4, 1n), {
    nodes: 4,
    minPerGpuHour: "0.100000",
    medianPerGpuHour: "0.200000",
  });
});

test("a TTL cache answers its value at once and reloads behind the reader once it is stale", async () => {
  let nowMs = 0;
  let loads = 0;
  let release: (() => void) | undefined;
  const cache = new TtlCache(
    async () => {
      loads++;
      if (loads > 1) await new Promise<void>((resolve) => (release = resolve));
      return loads;
    },
    1000,
    () => nowMs,
    (e) => assert.fail(String(e)),
  );
  assert.equal(await cache.get(), 1);
  nowMs = 999;
  assert.equal(await cache.get(), 1);
  nowMs = 1000;
  assert.equal(await cache.get(), 1, "stale: the old value, while one reload runs");
  assert.equal(await cache.get(), 1);
  assert.equal(loads, 2);
  release!();
  await new Promise((resolve) => setImmediate(resolve));
  assert.equal(await cache.get(), 2);
});

forEachDatabase("network boards", (db) => {
  test("prices count available unflagged nodes per model and, in market mode, suppliers' prices; regions count per zone, verified apart", async (t) => {
    const r = await openRegistry(db, t);
    const at = () => ({ actor: "test", reason: "test", nowMs: r.clock.advance(1000) });
    const add = async (fixture: GpuFixture, zone: string, i: number, available: boolean) => {
      const gpus = (await fixtureGpus(fixture)).map((g) => ({ ...g, uuid: `G-${i}-${g.index}` }));
      const region = zone.slice(0, -2);
      const { nodeId } = await r.register({ region, zone, hardware: hardwareWith(gpus) });
      if (available) await r.lifecycle.apply(nodeId, { type: "connect", verified: true }, at());
      return nodeId;
    };
    const a = await add("rtx4090", "eu-west-a", 1, true);
    await add("rtx4090", "eu-west-b", 2, true);
    await add("rtx4090", "eu-west-b", 3, false);
    await add("h100x8", "us-east-c", 4, true);
    await add("none", "us-east-c", 5, true);
    // Two nodes reporting one RTX 4090 UUID: flagged, online and available, yet never supply.
    await add("rtx4090", "eu-west-c", 6, true);
    await add("rtx4090", "eu-west-c", 6, true);
    await r.store.db
      .updateTable("nodes")
      .set({ price_per_hour: 250_000n })
      .where("id", "=", a)
      .execute();

    const catalog = await priceBoard(r.store.db, DEFAULT_CATALOG_PRICES, "catalog", r.clock.now());
    const rtx = catalog.models.find((m) => m.model === "rtx-4090")!;
    assert.deepEqual(
      [rtx.availableNodes, rtx.availableGpus, rtx.catalogPerGpuHour],
      [2, 2, "0.390000"],
    );
    assert.equal(rtx.market, null);
    assert.equal(rtx.reference, null, "no hyperscaler rents a GeForce card");
    const h100 = catalog.models.find((m) => m.model === "h100-80gb")!;
    assert.deepEqual([h100.availableNodes, h100.availableGpus], [1, 8]);
    assert.equal(h100.reference?.perGpuHour, "12.290000");
    assert.equal(catalog.models.find((m) => m.model === "a100-80gb")!.availableNodes, 0);
    // The paper's A100 40GB is listed, priced, and set beside its AWS on-demand price.
    const a100 = catalog.models.find((m) => m.model === "a100-40gb")!;
    assert.deepEqual(
      [a100.name, a100.catalogPerGpuHour, a100.reference?.instance, a100.reference?.perGpuHour],
      ["NVIDIA A100 40GB", "0.990000", "p4d.24xlarge", "4.096575"],
    );

    const market = await priceBoard(r.store.db, DEFAULT_CATALOG_PRICES, "market", r.clock.now());
    assert.deepEqual(market.models.find((m) => m.model === "rtx-4090")!.market, {
      nodes: 2,
      minPerGpuHour: "0.250000",
      medianPerGpuHour: "0.250000",
    });

    const regions = await regionBoard(r.store.db, r.clock.now());
    const euWest = regions.regions.find((x) => x.id === "eu-west")!;
    assert.deepEqual(
      [euWest.nodes, euWest.online, euWest.gpus, euWest.gpusOnline, euWest.gpusVerified],
      [5, 4, 5, 4, 2],
    );
    assert.deepEqual(
      euWest.zones.find((z) => z.id === "eu-west-b"),
      {
        id: "eu-west-b",
        nodes: 2,
        online: 1,
        gpus: 2,
        gpusOnline: 1,
        gpusVerified: 1,
      },
    );
    assert.deepEqual(
      euWest.zones.find((z) => z.id === "eu-west-c"),
      { id: "eu-west-c", nodes: 2, online: 2, gpus: 2, gpusOnline: 2, gpusVerified: 0 },
    );
    const usEast = regions.regions.find((x) => x.id === "us-east")!;
    assert.deepEqual([usEast.nodes, usEast.online, usEast.gpus, usEast.gpusVerified], [2, 2, 8, 8]);
    assert.equal(regions.regions.find((x) => x.id === "sa-east")!.nodes, 0);
  });
});
