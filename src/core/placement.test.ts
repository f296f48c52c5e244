import assert from "node:assert/strict";
import { describe, it } from "node:test";
import fc from "fast-check";
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
