import assert from "node:assert/strict";
import { test, type TestContext } from "node:test";
import type { Kysely } from "kysely";
import { ErrorCode, TandemError } from "../../core/errors.ts";
import { formatMoney, units } from "../../core/money.ts";
import { DEFAULT_CATALOG_PRICES, nodePriceUsd, type CatalogPrices } from "../../core/pricing.ts";
import type { NodeView } from "../../protocol/nodes.ts";
import { forEachDatabase, type DatabaseUnderTest } from "../../../test/support/coordinator.ts";
import {
  fixtureGpus,
  hardwareWith,
  signedRegistration,
  type GpuFixture,
} from "../../../test/support/devices.ts";
import { explain } from "../../../test/support/explain.ts";
import { openRegistry } from "../../../test/support/registry.ts";
import { NodeQueries } from "./node-queries.ts";
import type { Database } from "../store/schema.ts";
import { CATALOG_PRICING, syncNodePricing, type NodePricing, type SortOrder } from "./node-sort.ts";

/** Machine kinds, three of each: many equal prices, and one GPU the catalog cannot price. */
const KINDS: Array<GpuFixture | "unknown"> = ["h100x8", "rtx4090", "rtx3060ti", "none", "unknown"];
const COPIES = 3;

async function network(db: DatabaseUnderTest, t: TestContext) {
  const r = await openRegistry(db, t);
  const kinds = new Map<string, GpuFixture | "unknown">();
  for (let copy = 0; copy < COPIES; copy++) {
    for (const kind of KINDS) {
      const gpus =
        kind === "unknown"
          ? (await fixtureGpus("rtx4090")).map((g) => ({ ...g, name: "Acme Mystery 9000" }))
          : await fixtureGpus(kind);
      const hardware = hardwareWith(
        gpus.map((g) => ({ ...g, uuid: `GPU-${kinds.size}-${g.index}` })),
      );
      const { nodeId } = await r.register({ region: "eu-west", zone: "eu-west-a", hardware });
      kinds.set(nodeId, kind);
    }
  }
  return { r, kinds };
}

/** Every node id, following `sort=price` cursors from the first page to the last. */
async function pagedByPrice(nodes: NodeQueries, limit: number, order?: SortOrder) {
  const ids: string[] = [];
  let cursor: string | undefined;
  for (let pages = 0; pages < 100; pages++) {
    const page = await nodes.list({}, limit, cursor, "price", order);
    ids.push(...page.items.map((n) => n.id));
    if (page.nextCursor === null) return ids;
    assert.equal(page.items.length, limit, "only the last page may be short");
    cursor = page.nextCursor;
  }
  assert.fail("the cursor never ended");
}

/** The reference order: price (null last), then id; `desc` reverses both. */
function expected(prices: ReadonlyMap<string, bigint | undefined>, order: SortOrder): string[] {
  const sign = order === "asc" ? 1 : -1;
  const cmp = <T>(a: T, b: T) => (a === b ? 0 : a < b ? -1 : 1);
  return [...prices.keys()].sort((a, b) => {
    const pa = prices.get(a);
    const pb = prices.get(b);
    const byPrice = pa === pb ? 0 : pa === undefined ? 1 : pb === undefined ? -1 : cmp(pa, pb);
    return sign * (byPrice || cmp(a, b));
  });
}

function assertPrices(items: readonly NodeView[], prices: ReadonlyMap<string, bigint | undefined>) {
  for (const n of items) {
    const price = prices.get(n.id);
    assert.equal(n.pricePerHourUsd, price === undefined ? null : formatMoney(units(price)), n.id);
  }
}

/** Every node's price under `prices` in `mode`, from the nodes as listed (and `own` prices). */
async function pricesUnder(
  nodes: NodeQueries,
  prices: CatalogPrices,
  own: ReadonlyMap<string, bigint> = new Map(),
): Promise<Map<string, bigint | undefined>> {
  const views = (await nodes.list({}, 500)).items;
  return new Map(
    views.map((n) => [n.id, own.get(n.id) ?? nodePriceUsd(prices, n.gpuModel, n.gpuCount)]),
  );
}

async function assertSorted(nodes: NodeQueries, prices: ReadonlyMap<string, bigint | undefined>) {
  assertPrices((await nodes.list({}, 500)).items, prices);
  for (const order of ["asc", "desc"] as const)
    for (const limit of [1, 2, 4, 500])
      assert.deepEqual(
        await pagedByPrice(nodes, limit, order),
        expected(prices, order),
        `${order} by ${limit}`,
      );
  assert.deepEqual(await pagedByPrice(nodes, 3), expected(prices, "asc"), "cheapest first");
}

forEachDatabase("nodes sorted by price", (db) => {
  test("catalog prices × GPU count, then each supplier's own price in market mode", async (t) => {
    const { r, kinds } = await network(db, t);
    const catalog = new Map<string, bigint | undefined>();
    const views = (await r.nodes.list({}, 500)).items;
    for (const n of views)
      catalog.set(n.id, nodePriceUsd(DEFAULT_CATALOG_PRICES, n.gpuModel, n.gpuCount));
    assert.deepEqual(
      views.filter((n) => n.pricePerHourUsd === null).map((n) => kinds.get(n.id)),
      ["unknown", "unknown", "unknown"],
    );
    assert.equal(views.find((n) => kinds.get(n.id) === "h100x8")?.pricePerHourUsd, "15.920000");
    await assertSorted(r.nodes, catalog);

    // Suppliers' own prices: one under every catalog price, one equal to the RTX 4090's (a tie
    // across the two sources), one for the node the catalog cannot price.
    const ids = [...kinds.keys()];
    const own = new Map<string, bigint>([
      [ids.find((id) => kinds.get(id) === "h100x8")!, 10_000n],
      [ids.find((id) => kinds.get(id) === "rtx3060ti")!, 390_000n],
      [ids.find((id) => kinds.get(id) === "unknown")!, 5_000_000n],
    ]);
    for (const [id, price] of own)
      await r.store.db
        .updateTable("nodes")
        .set({ price_per_hour: BigInt(price) })
        .where("id", "=", id)
        .execute();
    await assertSorted(r.nodes, catalog); // the catalog mode ignores them
    const market = new NodeQueries(r.store.db, undefined, {
      prices: DEFAULT_CATALOG_PRICES,
      mode: "market",
    });
    const marketPrices = new Map([...catalog].map(([id, p]) => [id, own.get(id) ?? p]));
    await assertSorted(market, marketPrices);
    const [cheapest] = (await market.list({}, 1, undefined, "price")).items;
    assert.equal(cheapest?.pricePerHourUsd, "0.010000");
    assert.equal((await market.get(cheapest.id)).pricePerHourUsd, "0.010000");
  });

  test("a price cursor that is not a safe price is VALIDATION_FAILED", async (t) => {
    const { r } = await network(db, t);
    const first = await r.nodes.list({}, 2, undefined, "price");
    const lastId = first.items[1]!.id;
    const forged = (value: unknown, key = "price") =>
      Buffer.from(JSON.stringify([key, value, lastId])).toString("base64url");
    for (const bad of [
      forged(1e300),
      forged(-1),
      forged(1.5),
      forged("10"),
      forged(10, "uptime"),
    ]) {
      await assert.rejects(
        r.nodes.list({}, 2, bad, "price"),
        (e: unknown) => e instanceof TandemError && e.code === ErrorCode.VALIDATION_FAILED,
        Buffer.from(bad, "base64url").toString(),
      );
    }
    await assert.rejects(
      r.nodes.list({}, 2, first.nextCursor!, "uptime"),
      (e: unknown) => e instanceof TandemError && e.code === ErrorCode.VALIDATION_FAILED,
    );
    // A cursor at a NULL price (the unpriced nodes, last ascending) pages on among them.
    const nulls = await r.nodes.list({}, 1, forged(null), "price");
    assert.equal(nulls.items[0]?.pricePerHourUsd ?? null, null);
  });
});

/** Another catalog: the H100 cheaper, the RTX 4090 dropped (unpriced), CPU-only nodes dearer. */
const OTHER_PRICES: CatalogPrices = {
  perGpuHour: Object.fromEntries([
    ...Object.entries(DEFAULT_CATALOG_PRICES.perGpuHour).filter(([m]) => m !== "rtx-4090"),
    ["h100-80gb", 15_000n],
  ]),
  cpuNodeHour: 700_000n,
};

forEachDatabase("stored node prices follow their inputs", (db) => {
  test("a market price change and a re-probe move the node and its shown price", async (t) => {
    const { r, kinds } = await network(db, t);
    const market: NodePricing = { prices: DEFAULT_CATALOG_PRICES, mode: "market" };
    const nodes = new NodeQueries(r.store.db, undefined, market);
    await assertSorted(nodes, await pricesUnder(nodes, DEFAULT_CATALOG_PRICES));

    const ids = [...kinds.keys()];
    const h100 = ids.find((id) => kinds.get(id) === "h100x8")!;
    const setPrice = (id: string, price: number | null) =>
      r.store.db
        .updateTable("nodes")
        .set({ price_per_hour: price === null ? null : BigInt(price) })
        .where("id", "=", id)
        .execute();
    await setPrice(h100, 1);
    const [first] = (await nodes.list({}, 1, undefined, "price")).items;
    assert.deepEqual([first?.id, first?.pricePerHourUsd], [h100, "0.000001"]);
    await setPrice(h100, 99_000_000);
    let own = new Map([[h100, 99_000_000n]]);
    await assertSorted(nodes, await pricesUnder(nodes, DEFAULT_CATALOG_PRICES, own));
    // Descending, the three nodes nobody prices come first (NULL is the largest).
    const dearest = (await nodes.list({}, 4, undefined, "price", "desc")).items[3];
    assert.deepEqual([dearest?.id, dearest?.pricePerHourUsd], [h100, "99.000000"]);
    await setPrice(h100, null); // back to the catalog's
    own = new Map();
    await assertSorted(nodes, await pricesUnder(nodes, DEFAULT_CATALOG_PRICES, own));

    // The worker restarts on other hardware: an RTX 3060 Ti machine now reports 8 × H100.
    const at = { region: "eu-west", zone: "eu-west-a" };
    const rtx = (await fixtureGpus("rtx3060ti")).map((g) => ({ ...g, uuid: `GPU-rtx-${g.index}` }));
    const { nodeId: reprobed, device } = await r.register({ ...at, hardware: hardwareWith(rtx) });
    assert.equal((await nodes.get(reprobed)).pricePerHourUsd, "0.100000");
    const h100s = (await fixtureGpus("h100x8")).map((g) => ({ ...g, uuid: `GPU-re-${g.index}` }));
    const hardware = hardwareWith(h100s);
    await r.devices.register(r.supplierId, signedRegistration(device, { ...at, hardware }), 0);
    assert.equal((await nodes.get(reprobed)).pricePerHourUsd, "15.920000");
    await assertSorted(nodes, await pricesUnder(nodes, DEFAULT_CATALOG_PRICES));
  });

  test("a start with another catalog or mode recomputes every price once", async (t) => {
    const { r } = await network(db, t);
    const { db: kysely } = r.store;
    // Migration 0013 stored the catalog of its time (frozen): the first start with today's catalog
    // brings the stored pricing up to date, a second start changes nothing.
    assert.equal(await syncNodePricing(kysely, CATALOG_PRICING), true);
    assert.equal(await syncNodePricing(kysely, CATALOG_PRICING), false);
    const before = await storedPrices(kysely);

    const other: NodePricing = { prices: OTHER_PRICES, mode: "catalog" };
    assert.equal(await syncNodePricing(kysely, other), true);
    assert.equal(await syncNodePricing(kysely, other), false);
    const restarted = new NodeQueries(kysely, undefined, other);
    const expected = await pricesUnder(restarted, OTHER_PRICES);
    assert.ok([...expected.values()].includes(15_000n * 8n), "the H100 machines are repriced");
    await assertSorted(restarted, expected);

    // A node registered after the change is priced under the stored pricing, by the trigger.
    const { nodeId } = await r.register({
      region: "eu-west",
      zone: "eu-west-a",
      hardware: hardwareWith([]),
    });
    assert.equal((await restarted.get(nodeId)).pricePerHourUsd, "0.700000");
    await assertSorted(restarted, await pricesUnder(restarted, OTHER_PRICES));

    // A start in market mode counts the suppliers' own prices; one back in the default catalog
    // restores the first prices exactly.
    const ids = [...expected.keys()];
    await r.store.db
      .updateTable("nodes")
      .set({ price_per_hour: 3n })
      .where("id", "=", ids[0]!)
      .execute();
    const market = new NodeQueries(kysely, undefined, { prices: OTHER_PRICES, mode: "market" });
    const [cheapest] = (await market.list({}, 1, undefined, "price")).items;
    assert.deepEqual([cheapest?.id, cheapest?.pricePerHourUsd], [ids[0], "0.000003"]);
    assert.equal(await syncNodePricing(kysely, CATALOG_PRICING), true);
    const after = await storedPrices(kysely);
    after.delete(nodeId);
    assert.deepEqual(after, before);
  });

  test("a start with a catalog that gained a model prices that model's nodes", async (t) => {
    const { r } = await network(db, t);
    const { db: kysely } = r.store;
    // The coordinator last ran a catalog without the H100 PCIe: its owners' nodes are unpriced.
    const older: CatalogPrices = {
      ...DEFAULT_CATALOG_PRICES,
      perGpuHour: Object.fromEntries(
        Object.entries(DEFAULT_CATALOG_PRICES.perGpuHour).filter(([m]) => m !== "h100-pcie"),
      ),
    };
    assert.equal(await syncNodePricing(kysely, { prices: older, mode: "catalog" }), true);
    const gpus = (await fixtureGpus("rtx4090")).flatMap((g) =>
      [0, 1].map((index) => ({
        ...g,
        index,
        uuid: `GPU-pcie-${index}`,
        name: "NVIDIA H100 PCIe",
        memoryTotalMiB: 81559,
      })),
    );
    const { nodeId } = await r.register({
      region: "eu-west",
      zone: "eu-west-a",
      hardware: hardwareWith(gpus),
    });
    const before = await new NodeQueries(kysely, undefined, { prices: older, mode: "catalog" }).get(
      nodeId,
    );
    assert.deepEqual([before.gpuModel, before.pricePerHourUsd], ["h100-pcie", null]);

    // Started with today's catalog: the stored price table gains the model, the node its price.
    assert.equal(await syncNodePricing(kysely, CATALOG_PRICING), true);
    const stored = await kysely
      .selectFrom("node_gpu_prices")
      .select("per_gpu_hour")
      .where("model", "=", "h100-pcie")
      .executeTakeFirst();
    assert.equal(String(stored?.per_gpu_hour), "1590000");
    const after = await r.nodes.get(nodeId);
    assert.equal(after.pricePerHourUsd, "3.180000");
    assert.equal((await storedPrices(kysely)).get(nodeId), "3180000");
    await assertSorted(r.nodes, await pricesUnder(r.nodes, DEFAULT_CATALOG_PRICES));
  });

  test("the price sort reads the (price, id) index, in both orders and after a cursor", async (t) => {
    const { r } = await network(db, t);
    const first = await r.nodes.list({}, 2, undefined, "price");
    const last = await r.nodes.list({}, 2, undefined, "price", "desc");
    const cases: Array<[SortOrder, string | undefined]> = [
      ["asc", undefined],
      ["desc", undefined],
      ["asc", first.nextCursor!],
      ["desc", first.nextCursor!],
      ["asc", last.nextCursor!], // a cursor at a NULL price
      ["desc", last.nextCursor!],
    ];
    for (const [order, cursor] of cases) {
      const plan = await explain(
        r.store.db,
        db.kind,
        r.nodes.listQuery({}, 51, cursor, "price", order).compile(),
      );
      const at = `${order}${cursor === undefined ? "" : ", after a cursor"}:\n${plan}`;
      if (db.kind === "sqlite") {
        assert.match(plan, /USING (COVERING )?INDEX nodes_effective_price_per_hour_id\b/, at);
        assert.doesNotMatch(plan, /TEMP B-TREE/, at);
      } else {
        assert.match(plan, /Index Scan( Backward)? using nodes_effective_price_per_hour_id\b/, at);
        assert.doesNotMatch(plan, /\bSort\b/, at);
      }
    }
  });
});

async function storedPrices(db: Kysely<Database>): Promise<Map<string, string | null>> {
  const rows = await db.selectFrom("nodes").select(["id", "effective_price_per_hour"]).execute();
  return new Map(
    rows.map((n) => [
      n.id,
      n.effective_price_per_hour === null ? null : String(n.effective_price_per_hour),
    ]),
  );
}
