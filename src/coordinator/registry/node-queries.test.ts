import assert from "node:assert/strict";
import { test, type TestContext } from "node:test";
import fc from "fast-check";
import { ErrorCode, TandemError } from "../../core/errors.ts";
import { isOnline } from "../../core/node-status.ts";
import type { NodeSortKey, NodeView } from "../../protocol/nodes.ts";
import { forEachDatabase, type DatabaseUnderTest } from "../../../test/support/coordinator.ts";
import { fixtureGpus, hardwareWith, type GpuFixture } from "../../../test/support/devices.ts";
import { openRegistry, type Registry } from "../../../test/support/registry.ts";
import type { NodeFilter } from "./node-queries.ts";

const HOUR_MS = 3_600_000;
const FIXTURES: GpuFixture[] = ["h100x8", "rtx4090", "rtx3060ti", "none"];
const REGIONS = ["eu-west", "us-east", "ap-south"];
const NODES = 30;

/**
 * A network of NODES nodes over four machine kinds and three regions, with every status and a
 * spread of uptimes: registered at t0, seen at t0 + 24 h.
 */
async function population(db: DatabaseUnderTest, t: TestContext) {
  const r = await openRegistry(db, t);
  const t0 = r.clock.now();
  const at = (ms: number) => ({ actor: "coordinator", reason: "test", nowMs: t0 + ms });
  for (let i = 0; i < NODES; i++) {
    const gpus = (await fixtureGpus(FIXTURES[i % 4]!)).map((g) => ({
      ...g,
      uuid: `GPU-${i}-${g.index}`,
    }));
    const region = REGIONS[i % 3]!;
    const zone = `${region}-${"abc"[Math.floor(i / 3) % 3]!}`;
    const { nodeId } = await r.register({ region, zone, hardware: hardwareWith(gpus) });
    const hours = i % 24;
    switch (i % 5) {
      case 0: // never connected
        break;
      case 1: // online since t0 + hours, unverified
        await r.lifecycle.apply(nodeId, { type: "connect", verified: false }, at(hours * HOUR_MS));
        break;
      case 2: // online from t0 for `hours`, then offline
        await r.lifecycle.apply(nodeId, { type: "connect", verified: true }, at(0));
        await r.lifecycle.apply(nodeId, { type: "disconnect" }, at(hours * HOUR_MS));
        break;
      case 3: // verified, online all along; every other one leased
        await r.lifecycle.apply(nodeId, { type: "connect", verified: true }, at(0));
        if (i % 2 === 0) await r.lifecycle.apply(nodeId, { type: "lease" }, at(12 * HOUR_MS));
        break;
      default:
        await r.lifecycle.apply(nodeId, { type: "revoke" }, at(HOUR_MS));
    }
  }
  await r.lifecycle.refreshAllUptime(r.clock.advance(24 * HOUR_MS));
  const all = await r.nodes.list({}, 500);
  assert.equal(all.items.length, NODES);
  assert.equal(all.nextCursor, null);
  return { r, all: all.items };
}

/** The brute-force reference: which nodes a filter keeps, in id order. */
function reference(all: readonly NodeView[], filter: NodeFilter): string[] {
  return all
    .filter(
      (n) =>
        (filter.gpuModel === undefined || n.gpuModel === filter.gpuModel) &&
        (filter.region === undefined || n.region === filter.region) &&
        (filter.zone === undefined || n.zone === filter.zone) &&
        (filter.status === undefined || n.status === filter.status) &&
        (filter.minUptime === undefined || n.uptime["30d"] >= filter.minUptime) &&
        (filter.minVramMiB === undefined || n.vramMiB >= filter.minVramMiB) &&
        (filter.minReputation === undefined || n.reputation >= filter.minReputation),
    )
    .map((n) => n.id)
    .sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
}

/** Every page of a listing, following the cursor to the end. */
async function allPages(
  r: Registry,
  filter: NodeFilter,
  limit: number,
  sort?: { key: NodeSortKey; order: "asc" | "desc" },
): Promise<string[]> {
  const ids: string[] = [];
  let cursor: string | undefined;
  for (let pages = 0; pages <= NODES + 1; pages++) {
    const page = await r.nodes.list(filter, limit, cursor, sort?.key, sort?.order);
    assert.ok(page.items.length <= limit, "page longer than its limit");
    ids.push(...page.items.map((n) => n.id));
    if (page.nextCursor === null) return ids;
    assert.equal(page.items.length, limit, "only the last page may be short");
    cursor = page.nextCursor;
  }
  assert.fail("the cursor never ended");
}

const filterArbitrary: fc.Arbitrary<NodeFilter> = fc.record(
  {
    gpuModel: fc.constantFrom("h100-80gb", "rtx-4090", "rtx-3060-ti", "a100-80gb"),
    region: fc.constantFrom(...REGIONS, "sa-east"),
    zone: fc.constantFrom("eu-west-a", "us-east-b", "ap-south-c", "eu-west-c"),
    status: fc.constantFrom("unverified", "available", "leased", "standby", "offline", "revoked"),
    minUptime: fc.constantFrom(0, 0.25, 0.5, 0.9, 1),
    minVramMiB: fc.constantFrom(0, 8192, 20_000, 24_564, 80_000),
    minReputation: fc.constantFrom(0, 62.5, 63, 100),
  },
  { requiredKeys: [] },
);

forEachDatabase("node queries", (db) => {
  test("every filter and page size returns each matching node exactly once", async (t) => {
    const { r, all } = await population(db, t);
    // The population covers what the filters tell apart.
    assert.deepEqual(
      new Set(all.map((n) => n.status)),
      new Set(["offline", "unverified", "available", "leased", "revoked"]),
    );
    assert.ok(
      all.some((n) => n.uptime["30d"] > 0 && n.uptime["30d"] < 1),
      "no partial uptime",
    );
    assert.ok(
      all.some((n) => n.uptime["30d"] === 1),
      "no full uptime",
    );
    // Uptime moved the cached reputation either side of the prior.
    assert.ok(all.some((n) => n.reputation < 62.5) && all.some((n) => n.reputation > 62.5));

    for (const limit of [1, 7, NODES, 500]) {
      assert.deepEqual(await allPages(r, {}, limit), reference(all, {}));
    }
    await fc.assert(
      fc.asyncProperty(filterArbitrary, fc.integer({ min: 1, max: 12 }), async (filter, limit) => {
        assert.deepEqual(await allPages(r, filter, limit), reference(all, filter));
      }),
      { numRuns: 80 },
    );
    // A few fixed cases, so a broken reference cannot hide a broken query.
    assert.equal(reference(all, { gpuModel: "h100-80gb" }).length, Math.ceil(NODES / 4) - 0);
    assert.deepEqual(
      await allPages(r, { minVramMiB: 80_000 }, 3),
      await allPages(r, { gpuModel: "h100-80gb" }, 3),
    );
    assert.equal((await allPages(r, { region: "sa-east" }, 5)).length, 0);
  });

  test("sorts by uptime, reputation, model, region, status and price, both ways, paging exactly", async (t) => {
    const { r, all } = await population(db, t);
    const valueOf: Record<
      Exclude<NodeSortKey, "registered">,
      (n: NodeView) => string | number | null
    > = {
      uptime: (n) => n.uptime["30d"],
      reputation: (n) => n.reputation,
      gpuModel: (n) => n.gpuModel,
      region: (n) => n.region,
      status: (n) => n.status,
      price: (n) => (n.pricePerHourUsd === null ? null : Number(n.pricePerHourUsd)),
    };
    // NULL (a CPU-only node's model) is the largest value, as on PostgreSQL.
    const compare = (a: string | number | null, b: string | number | null) =>
      a === b ? 0 : a === null ? 1 : b === null ? -1 : a < b ? -1 : 1;
    for (const [key, value] of Object.entries(valueOf) as Array<
      [Exclude<NodeSortKey, "registered">, (n: NodeView) => string | number | null]
    >) {
      for (const order of ["asc", "desc"] as const) {
        for (const filter of [{}, { region: "eu-west" }] satisfies NodeFilter[]) {
          const sign = order === "asc" ? 1 : -1;
          const expected = all
            .filter((n) => filter.region === undefined || n.region === filter.region)
            .sort((a, b) => sign * (compare(value(a), value(b)) || compare(a.id, b.id)))
            .map((n) => n.id);
          assert.deepEqual(
            await allPages(r, filter, 4, { key, order }),
            expected,
            `${key} ${order} ${JSON.stringify(filter)}`,
          );
        }
      }
    }
    const byUptime = await r.nodes.list({}, 3, undefined, "uptime");
    assert.ok(byUptime.items[0]!.uptime["30d"] >= byUptime.items[2]!.uptime["30d"], "best first");
    const forged = Buffer.from(JSON.stringify(["region", 1, "x"])).toString("base64url");
    for (const bad of [
      byUptime.nextCursor!,
      forged,
      "!!!",
      Buffer.from("[1").toString("base64url"),
    ]) {
      await assert.rejects(
        r.nodes.list({}, 3, bad, "region"),
        (e: unknown) => e instanceof TandemError && e.code === ErrorCode.VALIDATION_FAILED,
        `sorted cursor ${bad}`,
      );
    }
  });

  test("network stats count nodes by status and GPUs by model: total, online and verified", async (t) => {
    const { r, all: before } = await population(db, t);
    // A second device reports the UUIDs of a verified H100 machine: both are flagged, connected
    // but never verified supply.
    const copied = before.find((n) => n.status === "leased" && n.gpuModel === "h100-80gb")!;
    const taken = await r.store.db
      .selectFrom("gpu_uuids")
      .select("uuid")
      .where("node_id", "=", copied.id)
      .orderBy("uuid")
      .execute();
    const uuids = (await fixtureGpus("h100x8")).map((g, i) => ({ ...g, uuid: taken[i]!.uuid }));
    const copy = await r.register({
      region: "eu-west",
      zone: "eu-west-a",
      hardware: hardwareWith(uuids),
    });
    const nowMs = r.clock.advance(1000);
    await r.lifecycle.apply(
      copy.nodeId,
      { type: "connect", verified: true },
      { actor: "c", reason: "test", nowMs },
    );
    const all = (await r.nodes.list({}, 500)).items;
    assert.deepEqual(
      all
        .filter((n) => n.flags.length > 0)
        .map((n) => n.id)
        .sort(),
      [copied.id, copy.nodeId].sort(),
    );
    const stats = await r.nodes.stats();
    const online = all.filter((n) => isOnline(n.status));
    const verified = online.filter((n) => n.status !== "unverified" && n.flags.length === 0);
    assert.ok(verified.length > 0 && verified.length < online.length);
    const byStatus: Record<string, number> = {};
    for (const n of all) byStatus[n.status] = (byStatus[n.status] ?? 0) + 1;
    const sum = (nodes: NodeView[]) => nodes.reduce((s, n) => s + n.gpuCount, 0);
    const models = ["h100-80gb", "rtx-4090", "rtx-3060-ti"];
    assert.deepEqual(stats, {
      nodes: { total: NODES + 1, online: online.length, verified: verified.length, byStatus },
      gpus: {
        total: sum(all),
        online: sum(online),
        verified: sum(verified),
        byModel: models
          .map((model) => ({
            model,
            total: sum(all.filter((n) => n.gpuModel === model)),
            online: sum(online.filter((n) => n.gpuModel === model)),
            verified: sum(verified.filter((n) => n.gpuModel === model)),
          }))
          .sort((a, b) => b.total - a.total || a.model.localeCompare(b.model)),
      },
    });
    // 8 H100 machines of 8 cards, 8 RTX 4090 and 7 RTX 3060 Ti machines of one, 7 CPU-only.
    assert.equal(stats.gpus.total, 9 * 8 + 8 + 7);
    assert.equal(
      stats.gpus.online - stats.gpus.verified,
      sum(online.filter((n) => n.status === "unverified")) + 2 * 8,
    );
    assert.equal(stats.nodes.byStatus["revoked"], NODES / 5);
  });

  test("an empty network has zero stats and an empty list", async (t) => {
    const r = await openRegistry(db, t);
    assert.deepEqual(await r.nodes.stats(), {
      nodes: { total: 0, online: 0, verified: 0, byStatus: {} },
      gpus: { total: 0, online: 0, verified: 0, byModel: [] },
    });
    assert.deepEqual(await r.nodes.list({}, 50), { items: [], nextCursor: null });
  });

  test("history pages in order; a malformed cursor is VALIDATION_FAILED", async (t) => {
    const r = await openRegistry(db, t);
    const hardware = hardwareWith(await fixtureGpus("rtx4090"));
    const { nodeId } = await r.register({ region: "eu-west", zone: "eu-west-a", hardware });
    for (let i = 0; i < 5; i++) {
      const nowMs = r.clock.advance(1000);
      await r.lifecycle.apply(
        nodeId,
        { type: "connect", verified: false },
        { actor: "d", reason: `c${i}`, nowMs },
      );
      await r.lifecycle.apply(
        nodeId,
        { type: "disconnect" },
        { actor: "c", reason: `d${i}`, nowMs },
      );
    }
    const everything = (await r.nodes.history(nodeId, 500)).items;
    assert.equal(everything.length, 11);
    const paged = [];
    let cursor: string | undefined;
    do {
      const page = await r.nodes.history(nodeId, 3, cursor);
      paged.push(...page.items);
      cursor = page.nextCursor ?? undefined;
    } while (cursor !== undefined);
    assert.deepEqual(paged, everything);

    const malformed = [
      "!!!",
      Buffer.from("' OR 1=1 --").toString("base64url"),
      Buffer.from("abc").toString("base64url"),
      Buffer.from("1e3").toString("base64url"),
      Buffer.from("99999999999999999999999").toString("base64url"),
      "",
    ];
    for (const bad of malformed) {
      await assert.rejects(
        r.nodes.history(nodeId, 3, bad),
        (e: unknown) => e instanceof TandemError && e.code === ErrorCode.VALIDATION_FAILED,
        `history cursor ${JSON.stringify(bad)}`,
      );
    }
    for (const bad of [malformed[0]!, malformed[1]!, Buffer.from("NODE_X").toString("base64url")]) {
      await assert.rejects(
        r.nodes.list({}, 3, bad),
        (e: unknown) => e instanceof TandemError && e.code === ErrorCode.VALIDATION_FAILED,
        `list cursor ${JSON.stringify(bad)}`,
      );
    }
    await assert.rejects(
      r.nodes.history("node_00000000000000000000000000", 3),
      (e: unknown) => e instanceof TandemError && e.code === ErrorCode.NOT_FOUND,
    );
  });
});
