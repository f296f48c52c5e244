import assert from "node:assert/strict";
import { test, type TestContext } from "node:test";
import { ErrorCode, TandemError } from "../../core/errors.ts";
import { formatMoney, units } from "../../core/money.ts";
import { DEFAULT_CATALOG_PRICES, nodePriceUsd } from "../../core/pricing.ts";
import type { NodeView } from "../../protocol/nodes.ts";
import { forEachDatabase, type DatabaseUnderTest } from "../../../test/support/coordinator.ts";
import { fixtureGpus, hardwareWith, type GpuFixture } from "../../../test/support/devices.ts";
import { openRegistry } from "../../../test/support/registry.ts";
import { NodeQueries } from "./node-queries.ts";
import type { SortOrder } from "./node-sort.ts";

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
        .set({ price_per_hour: Number(price) })
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
