/**
 * bench/network-stats: `GET /v1/network/stats` over 100,000 registered nodes, served from the
 * in-memory counts (src/coordinator/registry/network-counts.ts), against the per-request count it
 * replaced, on SQLite or a private PostgreSQL server.
 *
 *   node --import tsx bench/network-stats/run.ts [--db sqlite|postgres] [--nodes 100000]
 *        [--requests 2000] [--concurrency 16] [--churn-per-s 100] [--churn-s 5]
 *
 * 1. In this process, straight on the store: the old path (count by status and model, per call)
 *    and `NetworkCounts.stats()` quiet, then while `--churn-per-s` status changes a second go
 *    through `NodeLifecycle` (lease, release) — the counts must equal a fresh count at the end.
 * 2. Over HTTP on loopback, the coordinator in a child process: sequential requests, then
 *    `--concurrency` in flight.
 */
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { performance } from "node:perf_hooks";
import { parseArgs } from "node:util";
import { deepStrictEqual } from "node:assert/strict";
import { CoordinatorEvents } from "../../src/coordinator/events.ts";
import {
  NetworkCounts,
  countBuckets,
  statsFromBuckets,
} from "../../src/coordinator/registry/network-counts.ts";
import { NodeLifecycle } from "../../src/coordinator/registry/node-lifecycle.ts";
import { seedNetwork, type SeededNetwork } from "../support/seeded-network.ts";
import { machine, progress, round2, summarize } from "../support/stats.ts";

const { values: args } = parseArgs({
  options: {
    "churn-per-s": { type: "string", default: "100" },
    "churn-s": { type: "string", default: "5" },
    db: { type: "string", default: "sqlite" },
    nodes: { type: "string", default: "100000" },
    concurrency: { type: "string", default: "16" },
    requests: { type: "string", default: "2000" },
  },
});
const nodeCount = Number(args.nodes);
const requests = Number(args.requests);
const concurrency = Number(args.concurrency);
const churnPerS = Number(args["churn-per-s"]);
const churnS = Number(args["churn-s"]);
const WARMUP = 100;

const home = await mkdtemp(join(tmpdir(), "tandem-bench-stats-"));
let network: SeededNetwork | undefined;
try {
  const machineAtStart = machine();
  network = await seedNetwork(args.db, home, nodeCount);
  const store = network.store;
  progress(`seeded ${nodeCount} nodes (${args.db})`);

  /** In microseconds: the in-memory path is far below the 0.01 ms that summarize rounds to. */
  const timeCalls = async (count: number, call: () => Promise<unknown>) => {
    const samples: number[] = [];
    for (let i = 0; i < count; i++) {
      const startMs = performance.now();
      await call();
      samples.push((performance.now() - startMs) * 1000);
    }
    return summarize(samples);
  };
  const countPerCall = await timeCalls(200, async () =>
    statsFromBuckets(await countBuckets(store.db)),
  );
  progress(`count per call: p99 ${countPerCall.p99} µs`);

  const events = new CoordinatorEvents();
  const lifecycle = new NodeLifecycle(store.db, events);
  const counts = new NetworkCounts(store.db, events, {
    onError: (error) => {
      throw error;
    },
  });
  const loadStartMs = performance.now();
  await counts.start();
  const initialLoadMs = round2(performance.now() - loadStartMs);
  const quiet = await timeCalls(100_000, () => counts.stats());
  progress(`counts, quiet: p99 ${quiet.p99} µs`);

  // Churn: lease then release available nodes at a steady rate while a reader loops.
  const available = await store.db
    .selectFrom("nodes")
    .select("id")
    .where("status", "=", "available")
    .limit(Math.max(1, churnPerS * churnS))
    .execute();
  let changes = 0;
  let nowMs = Date.now();
  const ctx = () => ({ actor: "bench", reason: "churn", nowMs: ++nowMs });
  const churnStartMs = performance.now();
  const churnEndMs = churnStartMs + churnS * 1000;
  const churn = (async () => {
    for (let i = 0; performance.now() < churnEndMs; i++) {
      const node = available[i % available.length]!.id;
      const slotMs = churnStartMs + (i * 2000) / churnPerS;
      const waitMs = slotMs - performance.now();
      if (waitMs > 0) await new Promise((resolve) => setTimeout(resolve, waitMs));
      await lifecycle.apply(node, { type: "lease" }, ctx());
      await lifecycle.apply(node, { type: "release" }, ctx());
      changes += 2;
    }
  })();
  const churnSamples: number[] = [];
  while (performance.now() < churnEndMs) {
    const startMs = performance.now();
    await counts.stats();
    churnSamples.push((performance.now() - startMs) * 1000);
    await new Promise((resolve) => setImmediate(resolve));
  }
  await churn;
  const duringChurn = summarize(churnSamples);
  deepStrictEqual(await counts.stats(), statsFromBuckets(await countBuckets(store.db)));
  progress(`counts, ${changes} status changes: p99 ${duringChurn.p99} µs (exact at the end)`);
  await counts.stop();
  await store.close();

  const c = await network.startCoordinator();
  const http = async (count: number, parallel: number) => {
    await timeRequests(c.url, WARMUP, 1);
    const cpuBeforeMs = await c.cpuMs();
    const startMs = performance.now();
    const samples = await timeRequests(c.url, count, parallel);
    const wallS = (performance.now() - startMs) / 1000;
    return {
      ...summarize(samples),
      requestsPerS: Math.round(count / wallS),
      cpuMsPerRequest: round2(((await c.cpuMs()) - cpuBeforeMs) / count),
    };
  };
  const sequential = await http(requests, 1);
  progress(`HTTP sequential: p99 ${sequential.p99} ms`);
  const parallel = { concurrency, ...(await http(requests * 2, concurrency)) };
  progress(`HTTP ${concurrency} in flight: p99 ${parallel.p99} ms`);

  console.log(
    JSON.stringify(
      {
        machine: { ...machineAtStart, loadAvg1mAtEnd: machine().loadAvg1m },
        conditions: { database: args.db, nodes: nodeCount, requests, warmup: WARMUP },
        countsInitialLoadMs: initialLoadMs,
        inProcessUs: {
          countPerCall,
          countsQuiet: quiet,
          countsDuringChurn: { statusChanges: changes, seconds: churnS, ...duringChurn },
        },
        httpMs: { sequential, parallel },
      },
      null,
      2,
    ),
  );
} finally {
  await network?.stop();
  await rm(home, { recursive: true, force: true });
}

/** GETs the stats `count` times, `parallel` at a time; answers each latency in ms. */
async function timeRequests(base: string, count: number, parallel: number): Promise<number[]> {
  const samples: number[] = [];
  let next = 0;
  const client = async () => {
    while (next++ < count) {
      const startMs = performance.now();
      const response = await fetch(`${base}/v1/network/stats`);
      const body = await response.text();
      samples.push(performance.now() - startMs);
      if (response.status !== 200) throw new Error(`stats: ${response.status} ${body}`);
    }
  };
  await Promise.all(Array.from({ length: parallel }, client));
  return samples;
}
