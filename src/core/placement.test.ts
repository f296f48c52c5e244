import assert from "node:assert/strict";
import { describe, it } from "node:test";
import fc from "fast-check";
import { compareCandidates, SortedPlacementIndex } from "./placement-index.ts";
import {
  listIndex,
  place as placeIn,
  type PlacementCandidate,
  type PlacementRequest,
} from "./placement.ts";

const place = (nodes: PlacementCandidate[], request: PlacementRequest) =>
  placeIn(listIndex(nodes), request);

function node(id: number, over: Partial<PlacementCandidate> = {}): PlacementCandidate {
  return {
    nodeId: `node_${String(id).padStart(4, "0")}`,
    available: true,
    region: "eu-west",
    zone: `eu-west-${"abc"[id % 3]}`,
    gpuModel: "rtx-4090",
    gpuCount: 1,
    vramMiB: 24564,
    teeCapable: false,
    uptime30d: 0.99,
    reputation: 90,
    pricePerHour: 1_000_000n,
    ...over,
  };
}

describe("place", () => {
  it("takes the cheapest, then the most reliable nodes, head first", () => {
    const inventory = [
      node(1, { pricePerHour: 2_000_000n }),
      node(2, { uptime30d: 0.5 }),
      node(3),
      node(4),
    ];
    const result = place(inventory, { nodes: 2, gpuModel: "rtx-4090" });
    assert.ok(result.ok);
    assert.deepEqual(
      result.nodes.map((n) => n.nodeId),
      ["node_0003", "node_0004"],
    );
  });

  it("places a container cluster only on nodes that run containers, and says so when short", () => {
    const inventory = [node(1), node(2, { containers: true }), node(3, { containers: false })];
    const result = place(inventory, { nodes: 1, containers: true });
    assert.ok(result.ok);
    assert.equal(result.nodes[0]!.nodeId, "node_0002");
    const short = place(inventory, { nodes: 2, containers: true });
    assert.ok(!short.ok);
    assert.match(short.explanation, /runs containers: 1 \(need 2\)/);
  });

  it("places a kind only on nodes with its engine, taking a node that reported none as able", () => {
    const inventory = [
      node(1, { engines: ["torch", "dask"] }),
      node(2, { engines: ["torch", "ray"], pricePerHour: 3_000_000n }),
      node(3, { engines: [] }),
      node(4, { pricePerHour: 2_000_000n }),
    ];
    const ray = place(inventory, { nodes: 2, engine: "ray" });
    assert.ok(ray.ok);
    assert.deepEqual(
      ray.nodes.map((n) => n.nodeId),
      ["node_0004", "node_0002"],
    );
    const short = place(inventory, { nodes: 3, engine: "ray" });
    assert.ok(!short.ok);
    assert.match(short.explanation, /available: 4 → engine ray: 2 \(need 3\)/);
    const batch = place(inventory, { nodes: 4 });
    assert.ok(batch.ok, "no engine asked: every node");
  });

  it("places only on nodes staked at least minStake, the funnel naming the stake step", () => {
    const inventory = [
      node(1, { stake: 10_000_000n }),
      node(2, { stake: 9_999_999n }),
      node(3),
      node(4, { stake: 50_000_000n, pricePerHour: 3_000_000n }),
    ];
    const staked = place(inventory, { nodes: 2, minStake: 10_000_000n });
    assert.ok(staked.ok);
    assert.deepEqual(
      staked.nodes.map((n) => n.nodeId),
      ["node_0001", "node_0004"],
    );
    const short = place(inventory, { nodes: 3, minStake: 10_000_000n });
    assert.ok(!short.ok);
    assert.match(short.explanation, /available: 4 → stake ≥ 10\.000000 TDM: 2 \(need 3\)/);
    assert.ok(place(inventory, { nodes: 4 }).ok, "no stake asked: every node");
  });

  it("places isolated ranks only on nodes that build job networks, and overlays on those with one", () => {
    const both = { isolation: true, overlay: true };
    const inventory = [
      node(1),
      node(2, { network: { isolation: true, overlay: false } }),
      node(3, { network: both }),
      node(4, { network: both }),
    ];
    const isolated = place(inventory, { nodes: 3, network: "isolated" });
    assert.ok(isolated.ok);
    assert.deepEqual(
      isolated.nodes.map((n) => n.nodeId),
      ["node_0002", "node_0003", "node_0004"],
    );
    const overlay = place(inventory, { nodes: 3, network: "overlay" });
    assert.ok(!overlay.ok);
    assert.match(overlay.explanation, /isolated network: 3 → cluster overlay: 2 \(need 3\)/);
    assert.ok(place(inventory, { nodes: 4 }).ok, "without the ask any node will do");
  });

  it("takes at most one node behind NAT into a cluster overlay, standbys included", () => {
    const both = { isolation: true, overlay: true };
    const inventory = [
      node(1, { network: both, behindNat: true, pricePerHour: 500_000n }),
      node(2, { network: both, behindNat: true, pricePerHour: 600_000n }),
      node(3, { network: both, behindNat: true, pricePerHour: 700_000n }),
      node(4, { network: both }),
      node(5, { network: both }),
    ];
    const overlay = place(inventory, { nodes: 3, network: "overlay" });
    assert.ok(overlay.ok);
    assert.deepEqual(
      overlay.nodes.map((n) => n.nodeId),
      ["node_0001", "node_0004", "node_0005"],
    );
    assert.equal(overlay.matching, 3);
    const refused = place(inventory, { nodes: 4, network: "overlay" });
    assert.ok(!refused.ok);
    assert.equal(
      refused.explanation,
      "available: 5 → isolated network: 5 → cluster overlay: 5 → " +
        "behind NAT: at most 1 per cluster: 3 (need 4)",
    );
    assert.deepEqual(refused.funnel.at(-1), {
      filter: "behind NAT: at most 1 per cluster",
      remaining: 3,
    });
    assert.equal(refused.matching, 3);
    // A cluster without an overlay has no peers to reach: any number will do.
    const isolated = place(inventory, { nodes: 5, network: "isolated" });
    assert.ok(isolated.ok);
    // A replacement in a cluster that has one already takes none.
    const replacement = place(inventory, { nodes: 1, network: "overlay", maxBehindNat: 0 });
    assert.ok(replacement.ok);
    assert.equal(replacement.nodes[0]!.nodeId, "node_0004");
    const none = place(inventory.slice(0, 3), { nodes: 1, network: "overlay", maxBehindNat: 0 });
    assert.ok(!none.ok);
    assert.match(none.explanation, /behind NAT: none \(the cluster has one\): 0 \(need 1\)$/);
  });

  it("spreads over zones when asked", () => {
    const inventory = [node(0), node(3), node(6), node(1), node(2)];
    const result = place(inventory, { nodes: 3, spreadZones: true });
    assert.ok(result.ok);
    assert.deepEqual(new Set(result.nodes.map((n) => n.zone)).size, 3);
  });

  it("refuses a spread it cannot give, saying why", () => {
    const result = place([node(0), node(3)], { nodes: 2, spreadZones: true });
    assert.equal(result.ok, false);
    assert.match(!result.ok ? result.explanation : "", /need ≥ 2 zones for spread, have 1/);
  });

  it("answers the elimination funnel in filter order when it cannot place", () => {
    const inventory = [
      ...Array.from({ length: 10 }, (_, i) => node(i, { gpuModel: "rtx-3090" })),
      ...Array.from({ length: 6 }, (_, i) =>
        node(100 + i, { region: "us-east", zone: "us-east-a" }),
      ),
      node(200, { uptime30d: 0.5 }),
      node(201),
      node(202, { available: false }),
    ];
    const result = place(inventory, {
      nodes: 4,
      gpuModel: "rtx-4090",
      regions: ["eu-west"],
      minUptime: 0.95,
    });
    assert.equal(result.ok, false);
    if (result.ok) return;
    assert.equal(
      result.explanation,
      "available: 18 → rtx-4090: 8 → region eu-west: 2 → uptime ≥ 0.95: 1 (need 4)",
    );
  });

  it("filters on reputation after uptime, and names the step in the funnel", () => {
    const inventory = [
      node(1, { reputation: 62.5 }),
      node(2, { reputation: 79.9 }),
      node(3, { reputation: 80 }),
      node(4, { reputation: 95 }),
      node(5, { reputation: 99, uptime30d: 0.5 }),
    ];
    const placed = place(inventory, { nodes: 2, minReputation: 80 });
    assert.ok(placed.ok);
    assert.deepEqual(
      placed.nodes.map((n) => n.nodeId),
      ["node_0003", "node_0004"],
    );
    const refused = place(inventory, { nodes: 3, minUptime: 0.9, minReputation: 80 });
    assert.equal(refused.ok, false);
    if (refused.ok) return;
    assert.equal(
      refused.explanation,
      "available: 5 → uptime ≥ 0.9: 4 → reputation ≥ 80: 2 (need 3)",
    );
    assert.deepEqual(refused.funnel.at(-1), { filter: "reputation ≥ 80", remaining: 2 });
  });

  it("never picks an excluded, unavailable or non-matching node, nor one twice", () => {
    const arbitraryNode = fc.record({
      id: fc.nat(500),
      available: fc.boolean(),
      gpuModel: fc.constantFrom("rtx-4090", "h100-80gb", null),
      zone: fc.constantFrom("a", "b", "c"),
      price: fc.bigInt(1n, 5_000_000n),
    });
    fc.assert(
      fc.property(
        fc.uniqueArray(arbitraryNode, { selector: (n) => n.id, maxLength: 60 }),
        fc.integer({ min: 1, max: 8 }),
        fc.boolean(),
        (raw, count, spread) => {
          const inventory = raw.map((r) =>
            node(r.id, {
              available: r.available,
              gpuModel: r.gpuModel,
              zone: r.zone,
              pricePerHour: r.price,
            }),
          );
          const exclude = new Set(inventory.filter((_, i) => i % 5 === 0).map((n) => n.nodeId));
          const result = place(inventory, {
            nodes: count,
            gpuModel: "rtx-4090",
            spreadZones: spread,
            exclude,
          });
          const eligible = inventory.filter(
            (n) => n.available && n.gpuModel === "rtx-4090" && !exclude.has(n.nodeId),
          );
          if (!result.ok) {
            assert.ok(
              eligible.length < count ||
                (spread && count > 1 && new Set(eligible.map((n) => n.zone)).size < 2),
            );
            return;
          }
          assert.equal(result.nodes.length, count);
          assert.equal(new Set(result.nodes.map((n) => n.nodeId)).size, count);
          for (const chosen of result.nodes) assert.ok(eligible.includes(chosen));
        },
      ),
    );
  });
});

/** Placement written the obvious way: filter everything, sort everything. */
function reference(nodes: readonly PlacementCandidate[], request: PlacementRequest) {
  const eligible = nodes.filter(
    (n) =>
      n.available &&
      !(request.exclude?.has(n.nodeId) ?? false) &&
      (request.gpuModel === undefined ||
        (request.gpuModel === "cpu" ? n.gpuCount === 0 : n.gpuModel === request.gpuModel)) &&
      n.gpuCount >= (request.gpusPerNode ?? 0) &&
      n.vramMiB >= (request.minVramMiB ?? 0) &&
      (request.teeCapable !== true || n.teeCapable) &&
      (request.regions === undefined || request.regions.includes(n.region)) &&
      n.uptime30d >= (request.minUptime ?? 0) &&
      n.reputation >= (request.minReputation ?? 0) &&
      (request.maxPricePerHour === undefined || n.pricePerHour <= request.maxPricePerHour) &&
      (request.network === undefined || n.network?.isolation === true) &&
      (request.network !== "overlay" || n.network?.overlay === true),
  );
  const natLimit = request.network === "overlay" ? (request.maxBehindNat ?? 1) : Infinity;
  let natTaken = 0;
  /** Whether `n` may still be taken (a node behind NAT only while under the limit), and takes it. */
  const take = (n: PlacementCandidate) => {
    if (n.behindNat !== true) return true;
    if (natTaken >= natLimit) return false;
    natTaken++;
    return true;
  };
  const natEligible = eligible.filter((n) => n.behindNat === true).length;
  const matching = eligible.length - natEligible + Math.min(natEligible, natLimit);
  const sorted = [...eligible].sort(
    (a, b) =>
      Number(a.pricePerHour - b.pricePerHour) ||
      b.uptime30d - a.uptime30d ||
      a.nodeId.localeCompare(b.nodeId),
  );
  const chosen: PlacementCandidate[] = [];
  const zones = [...new Set(sorted.map((n) => n.zone))];
  if (request.spreadZones === true) {
    const queues = zones.map((zone) => sorted.filter((n) => n.zone === zone));
    while (chosen.length < request.nodes && queues.some((q) => q.length > 0))
      for (const queue of queues) {
        if (chosen.length >= request.nodes) break;
        for (let next = queue.shift(); next !== undefined; next = queue.shift())
          if (take(next)) {
            chosen.push(next);
            break;
          }
      }
  } else for (const n of sorted) if (chosen.length < request.nodes && take(n)) chosen.push(n);
  const spreadImpossible = request.spreadZones === true && request.nodes > 1 && zones.length < 2;
  const ok = chosen.length === request.nodes && !spreadImpossible;
  return { ok, nodes: ok ? chosen.map((n) => n.nodeId) : [], matching };
}

const MODELS = ["rtx-4090", "h100-80gb", "a100-80gb", null] as const;
const BOTH = { isolation: true, overlay: true };
const arbitraryCandidate = fc
  .record({
    id: fc.nat(300),
    available: fc.boolean(),
    model: fc.constantFrom(...MODELS),
    gpuCount: fc.constantFrom(1, 2, 4, 8),
    vramGiB: fc.constantFrom(16, 24, 48, 80),
    region: fc.constantFrom("eu-west", "us-east"),
    zone: fc.constantFrom("a", "b", "c"),
    tee: fc.boolean(),
    // Few distinct prices and uptimes, so ties (and the tie-breakers) are common.
    price: fc.constantFrom(1n, 2n, 3n, 5n),
    uptime: fc.constantFrom(0.5, 0.9, 0.99),
    reputation: fc.constantFrom(40, 80, 95),
    network: fc.constantFrom(undefined, { isolation: true, overlay: false }, BOTH, BOTH),
    behindNat: fc.boolean(),
  })
  .map((r): PlacementCandidate => ({
    nodeId: `node_${String(r.id).padStart(4, "0")}`,
    available: r.available,
    region: r.region,
    zone: `${r.region}-${r.zone}`,
    gpuModel: r.model,
    gpuCount: r.model === null ? 0 : r.gpuCount,
    vramMiB: r.model === null ? 0 : r.vramGiB * 1024,
    teeCapable: r.tee,
    uptime30d: r.uptime,
    reputation: r.reputation,
    pricePerHour: r.price,
    network: r.network,
    behindNat: r.behindNat,
  }));
const arbitraryRequest = fc.record(
  {
    nodes: fc.integer({ min: 1, max: 10 }),
    gpuModel: fc.constantFrom("rtx-4090", "h100-80gb", "a100-80gb", "cpu", "l40s"),
    gpusPerNode: fc.constantFrom(1, 2, 8),
    minVramMiB: fc.constantFrom(20_000, 40_000, 90_000),
    regions: fc.subarray(["eu-west", "us-east", "ap-south"], { minLength: 1 }),
    spreadZones: fc.boolean(),
    minUptime: fc.constantFrom(0.6, 0.95),
    minReputation: fc.constantFrom(50, 90),
    maxPricePerHour: fc.constantFrom(0n, 2n, 3n),
    teeCapable: fc.boolean(),
    network: fc.constantFrom("isolated" as const, "overlay" as const),
    maxBehindNat: fc.constantFrom(0, 1, 2),
  },
  { requiredKeys: ["nodes"] },
);
/** A change the inventory makes when a node's row changes: replaced (any field) or removed. */
const arbitraryChange = fc.oneof(
  arbitraryCandidate.map((node) => ({ upsert: node })),
  fc.nat(300).map((id) => ({ remove: `node_${String(id).padStart(4, "0")}` })),
);

describe("place over the sorted index", () => {
  it("answers what a filter-and-sort of every node answers, after any sequence of changes", () => {
    fc.assert(
      fc.property(
        fc.array(arbitraryCandidate, { maxLength: 120 }),
        fc.array(arbitraryChange, { maxLength: 60 }),
        fc.array(arbitraryRequest, { minLength: 1, maxLength: 5 }),
        fc.array(fc.nat(300), { maxLength: 10 }),
        (initial, changes, requests, excluded) => {
          const index = new SortedPlacementIndex<PlacementCandidate>();
          const truth = new Map<string, PlacementCandidate>();
          for (const node of initial) {
            index.upsert(node);
            truth.set(node.nodeId, node);
          }
          for (const change of changes) {
            if ("upsert" in change) {
              index.upsert(change.upsert);
              truth.set(change.upsert.nodeId, change.upsert);
            } else {
              index.remove(change.remove);
              truth.delete(change.remove);
            }
          }
          const exclude = new Set(excluded.map((id) => `node_${String(id).padStart(4, "0")}`));
          for (const request of [...requests, ...requests.map((r) => ({ ...r, exclude }))]) {
            const got = placeIn(index, request);
            const want = reference([...truth.values()], request);
            assert.equal(got.ok, want.ok);
            assert.deepEqual(got.ok ? got.nodes.map((n) => n.nodeId) : [], want.nodes);
            assert.equal(got.matching, want.matching);
            if (!got.ok) assert.equal(got.funnel.at(-1)?.remaining, want.matching);
            if (got.ok && request.network === "overlay")
              assert.ok(
                got.nodes.filter((n) => n.behindNat === true).length <= (request.maxBehindNat ?? 1),
                "never more nodes behind NAT in one overlay than allowed",
              );
            const viaList = placeIn(listIndex([...truth.values()]), request);
            assert.deepEqual(viaList, got.ok ? { ...got } : got);
          }
        },
      ),
      { numRuns: 300 },
    );
  });

  it("keeps every partition sorted best first, with bounds that hold its nodes", () => {
    fc.assert(
      fc.property(
        fc.array(arbitraryCandidate, { maxLength: 120 }),
        fc.array(arbitraryChange, { maxLength: 80 }),
        (initial, changes) => {
          const index = new SortedPlacementIndex<PlacementCandidate>();
          for (const node of initial) index.upsert(node);
          for (const change of changes)
            if ("upsert" in change) index.upsert(change.upsert);
            else index.remove(change.remove);
          const available = [...index.all()].filter((n) => n.available);
          let inPartitions = 0;
          for (const p of index.partitions()) {
            assert.ok(p.nodes.length > 0);
            inPartitions += p.nodes.length;
            for (let i = 1; i < p.nodes.length; i++)
              assert.ok(compareCandidates(p.nodes[i - 1]!, p.nodes[i]!) < 0);
            for (const n of p.nodes) {
              assert.equal(index.get(n.nodeId), n);
              assert.deepEqual([n.gpuModel, n.region, n.zone], [p.gpuModel, p.region, p.zone]);
            }
            const counts = p.nodes.map((n) => n.gpuCount);
            assert.equal(p.minGpuCount, Math.min(...counts));
            assert.equal(p.maxGpuCount, Math.max(...counts));
            assert.equal(p.maxVramMiB, Math.max(...p.nodes.map((n) => n.vramMiB)));
            assert.equal(p.maxUptime30d, Math.max(...p.nodes.map((n) => n.uptime30d)));
            assert.equal(p.maxReputation, Math.max(...p.nodes.map((n) => n.reputation)));
            assert.equal(
              p.anyTeeCapable,
              p.nodes.some((n) => n.teeCapable),
            );
          }
          assert.equal(inPartitions, available.length);
        },
      ),
      { numRuns: 300 },
    );
  });
});
