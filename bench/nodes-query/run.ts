/**
 * bench/nodes-query: `GET /v1/nodes` with filters, and `GET /v1/network/stats`, over 100,000
 * registered nodes, on loopback HTTP. The fleet is seeded straight into the store (SQLite by
 * default, or a private PostgreSQL server); the coordinator runs in a child process and this one
 * only sends requests and times them (request sent → whole body read).
 *
 *   node --import tsx bench/nodes-query/run.ts [--db sqlite|postgres] [--nodes 100000]
 *                                              [--requests 2000] [--concurrency 16]
 *                                              [--cpu-prof-dir DIR]  (profile the coordinator)
 *                                              [--only sort]  (only the mixes whose name has it)
 */
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { performance } from "node:perf_hooks";
import { parseArgs } from "node:util";
import { GPU_MODEL_IDS } from "../../src/core/gpu-catalog.ts";
import { REGIONS } from "../../src/core/regions.ts";
import { seedNetwork, type SeededNetwork } from "../support/seeded-network.ts";
import { machine, progress, round2, summarize, type LatencySummary } from "../support/stats.ts";

const { values: args } = parseArgs({
  options: {
    db: { type: "string", default: "sqlite" },
    nodes: { type: "string", default: "100000" },
    requests: { type: "string", default: "2000" },
    concurrency: { type: "string", default: "16" },
    "cpu-prof-dir": { type: "string" },
    only: { type: "string" },
  },
});
const nodeCount = Number(args.nodes);
const requests = Number(args.requests);
const concurrency = Number(args.concurrency);
const WARMUP = 100;

const ZONES = REGIONS.flatMap((r) => r.zones);
const cycle = <T>(values: readonly T[], i: number): T => values[i % values.length]!;

/** Each mix varies its values from request to request, so no two neighbours ask the same thing. */
const MIXES: Record<string, (i: number) => Record<string, string | number>> = {
  "no filter": () => ({}),
  gpuModel: (i) => ({ gpuModel: cycle(GPU_MODEL_IDS, i) }),
  region: (i) => ({ region: cycle(REGIONS, i).id }),
  zone: (i) => ({ zone: cycle(ZONES, i) }),
  status: (i) => ({
    status: cycle(["available", "offline", "leased", "unverified", "standby"], i),
  }),
  minUptime: (i) => ({ minUptime: cycle([0.5, 0.9, 0.95, 0.99], i) }),
  minVramMiB: (i) => ({ minVramMiB: cycle([8000, 16_000, 24_000, 40_000, 80_000], i) }),
  "gpuModel+status": (i) => ({ gpuModel: cycle(GPU_MODEL_IDS, i), status: "available" }),
  "region+status+minUptime": (i) => ({
    region: cycle(REGIONS, i).id,
    status: "available",
    minUptime: 0.95,
  }),
  "zone+minVramMiB+minUptime": (i) => ({
    zone: cycle(ZONES, i),
    minVramMiB: 40_000,
    minUptime: 0.9,
  }),
  "all six": (i) => ({
    gpuModel: cycle(GPU_MODEL_IDS, i),
    region: cycle(REGIONS, i * 7).id,
    zone: cycle(REGIONS, i * 7).zones[i % 3]!,
    status: "available",
    minUptime: 0.9,
    minVramMiB: 8000,
  }),
  // Sorted lists (issue 6): price from its stored column and index (0013), uptime for comparison.
  "sort=price": () => ({ sort: "price" }),
  "sort=price desc": () => ({ sort: "price", order: "desc" }),
  "sort=price, gpuModel": (i) => ({ sort: "price", gpuModel: cycle(GPU_MODEL_IDS, i) }),
  "sort=price, region+status": (i) => ({
    sort: "price",
    region: cycle(REGIONS, i).id,
    status: "available",
  }),
  "sort=uptime": () => ({ sort: "uptime" }),
};
const only = args.only;
const mixes = Object.entries(MIXES).filter(([name]) => only === undefined || name.includes(only));

const home = await mkdtemp(join(tmpdir(), "tandem-bench-nodes-"));
let network: SeededNetwork | undefined;
try {
  const machineAtStart = machine();
  const seedStartMs = performance.now();
  network = await seedNetwork(args.db, home, nodeCount);
  await network.store.close();
  progress(
    `seeded ${nodeCount} nodes (${args.db}) in ${round2((performance.now() - seedStartMs) / 1000)} s`,
  );

  const c = await network.startCoordinator({ cpuProfileDir: args["cpu-prof-dir"] });

  /** Times `count` requests and adds the coordinator's CPU time per request (load-independent). */
  const measure = async (
    count: number,
    path: (i: number) => string,
    onBody?: (body: string) => void,
    parallel = 1,
  ) => {
    await timeRequests(c.url, WARMUP, path, undefined, parallel);
    const cpuBeforeMs = await c.cpuMs();
    const startMs = performance.now();
    const samples = await timeRequests(c.url, count, path, onBody, parallel);
    const wallS = (performance.now() - startMs) / 1000;
    const cpuMsPerRequest = round2(((await c.cpuMs()) - cpuBeforeMs) / count);
    return { ...summarize(samples), requestsPerS: Math.round(count / wallS), cpuMsPerRequest };
  };

  const listNodes: Record<string, LatencySummary & { avgItems: number }> = {};
  for (const [name, query] of mixes) {
    let items = 0;
    const countItems = (body: string) => {
      items += (JSON.parse(body) as { items: unknown[] }).items.length;
    };
    const figures = await measure(requests, (i) => nodesPath(query(i)), countItems);
    listNodes[name] = { ...figures, avgItems: round2(items / requests) };
    progress(`${name}: p99 ${figures.p99} ms`);
  }

  /** Pages through a listing by its cursors, from the first page again after the last. */
  const following = async (name: string, query: Record<string, string>) => {
    if (only !== undefined && !name.includes(only)) return;
    let cursor: string | null = null;
    listNodes[name] = {
      ...(await measure(
        requests,
        () => nodesPath({ ...query, ...(cursor === null ? {} : { cursor }) }),
        (body) => ({ nextCursor: cursor } = JSON.parse(body) as { nextCursor: string | null }),
      )),
      avgItems: 50,
    };
    progress(`${name}: p99 ${listNodes[name].p99} ms`);
  };
  await following("status, following nextCursor", { status: "available" });
  await following("sort=price, following nextCursor", { sort: "price" });

  const networkStats =
    only === undefined ? await measure(requests, () => "/v1/network/stats") : undefined;
  if (networkStats !== undefined) progress(`network stats: p99 ${networkStats.p99} ms`);

  const names = mixes.map(([name]) => name);
  const mixed = (i: number) => nodesPath(MIXES[cycle(names, i)]!(Math.floor(i / names.length)));
  const listNodesConcurrent = {
    concurrency,
    ...(await measure(requests * 2, mixed, undefined, concurrency)),
  };

  const result = {
    machine: { ...machineAtStart, loadAvg1mAtEnd: machine().loadAvg1m },
    conditions: { database: args.db, nodes: nodeCount, limit: 50, requests, warmup: WARMUP, only },
    listNodesMs: listNodes,
    networkStatsMs: networkStats,
    listNodesConcurrentMs: listNodesConcurrent,
  };
  console.log(JSON.stringify(result, null, 2));
} finally {
  await network?.stop();
  await rm(home, { recursive: true, force: true });
}

function nodesPath(query: Record<string, string | number>): string {
  const params = new URLSearchParams(Object.entries(query).map(([k, v]) => [k, String(v)]));
  params.set("limit", "50");
  return `/v1/nodes?${params.toString()}`;
}

/** Sends `count` GETs, `parallel` at a time, and answers each one's latency in ms. */
async function timeRequests(
  base: string,
  count: number,
  path: (i: number) => string,
  onBody?: (body: string) => void,
  parallel = 1,
): Promise<number[]> {
  const samples: number[] = [];
  let next = 0;
  const client = async () => {
    while (next < count) {
      const url = base + path(next++);
      const startMs = performance.now();
      const response = await fetch(url);
      const body = await response.text();
      samples.push(performance.now() - startMs);
      if (response.status !== 200)
        throw new Error(`GET ${url}: ${response.status} ${body.slice(0, 300)}`);
      onBody?.(body);
    }
  };
  await Promise.all(Array.from({ length: parallel }, client));
  return samples;
}
