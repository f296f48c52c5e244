// bench/placement: 16-node placements with filters over an inventory of 100,000 nodes (issue 3:
// ≥ 2,000 decisions/s, p99 ≤ 5 ms). Runs the scheduler's pure `place` over an in-memory inventory
// shaped like the coordinator's, with a mix of filters, as the scheduler calls it.
import { monitorEventLoopDelay } from "node:perf_hooks";
import { GPU_CATALOG } from "../../src/core/gpu-catalog.ts";
import { SortedPlacementIndex } from "../../src/core/placement-index.ts";
import {
  place,
  type PlacementCandidate,
  type PlacementRequest,
} from "../../src/core/placement.ts";
import { REGIONS } from "../../src/core/regions.ts";

const NODES = Number(process.env.NODES ?? 100_000);
const DECISIONS = Number(process.env.DECISIONS ?? 5_000);
const ONLY = process.env.ONLY === undefined ? undefined : Number(process.env.ONLY);

let seed = 42;
const random = () => (seed = (Math.imul(seed, 1_103_515_245) + 12_345) >>> 0) / 2 ** 32;
const pick = <T>(list: readonly T[]): T => list[Math.floor(random() * list.length)]!;

const inventory: PlacementCandidate[] = Array.from({ length: NODES }, (_, i) => {
  const model = pick(GPU_CATALOG);
  const region = pick(REGIONS);
  return {
    nodeId: `node_${String(i).padStart(26, "0")}`,
    available: random() < 0.7,
    region: region.id,
    zone: pick(region.zones),
    gpuModel: model.id,
    gpuCount: pick([1, 1, 2, 4, 8]),
    vramMiB: model.vramMiB,
    teeCapable: model.teeCapable,
    uptime30d: random(),
    pricePerHour: BigInt(Math.floor(100_000 + random() * 2_000_000)),
    reputation: 50 + (i % 50),
  };
});

// The coordinator's Inventory keeps exactly this index, updated one node per status change.
const index = new SortedPlacementIndex<PlacementCandidate>();
const loadStarted = performance.now();
for (const node of inventory) index.upsert(node);
const loadMs = performance.now() - loadStarted;

const requests: PlacementRequest[] = [
  { nodes: 16, gpuModel: "rtx-4090" },
  {
    nodes: 16,
    gpuModel: "rtx-4090",
    regions: ["eu-west", "eu-central"],
    spreadZones: true,
    minUptime: 0.5,
  },
  { nodes: 16, gpuModel: "h100-80gb", gpusPerNode: 8, minUptime: 0.3 },
  { nodes: 16, minVramMiB: 40_000, maxPricePerHour: 1_500_000n },
  { nodes: 16, gpuModel: "a100-80gb", regions: ["us-east"], spreadZones: true },
];

const latencies: number[] = [];
const loopDelay = monitorEventLoopDelay({ resolution: 10 });
loopDelay.enable();
let placed = 0;
const started = performance.now();
for (let i = 0; i < DECISIONS; i++) {
  const t0 = performance.now();
  const result = place(index, requests[ONLY ?? i % requests.length]!);
  latencies.push(performance.now() - t0);
  if (result.ok) placed++;
}
const elapsedS = (performance.now() - started) / 1000;
loopDelay.disable();

// Incremental maintenance: a node taken (leased) and given back, as status events do it.
const UPDATES = 20_000;
const updatesStarted = performance.now();
for (let i = 0; i < UPDATES; i++) {
  const node = inventory[(i * 7_919) % inventory.length]!;
  index.upsert({ ...node, available: !node.available });
  index.upsert(node);
}
const updateUs = ((performance.now() - updatesStarted) * 1000) / (2 * UPDATES);
latencies.sort((a, b) => a - b);
const q = (p: number) =>
  latencies[Math.min(latencies.length - 1, Math.floor(p * latencies.length))]!.toFixed(3);
console.log(
  JSON.stringify({
    nodes: NODES,
    decisions: DECISIONS,
    placed,
    decisionsPerSecond: Math.round(DECISIONS / elapsedS),
    p50Ms: q(0.5),
    p99Ms: q(0.99),
    maxMs: q(1),
    indexLoadMs: Math.round(loadMs),
    updateUs: updateUs.toFixed(2),
  }),
);
