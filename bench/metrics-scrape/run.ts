/**
 * bench/metrics-scrape: what one `/metrics` scrape costs a coordinator over a large network
 * (issue 20): `--nodes` seeded nodes and `--leases` past leases, on SQLite or a private PostgreSQL
 * server. Times, in this process over the store: the usage figures' first refresh (all history,
 * once per process: `usageFigures`), and the whole registry's text as a scrape makes it, with the
 * figures cached (a scrape within a minute of the last refresh: three in four at a 15 s interval)
 * and refreshed (the fourth: open clusters, what ended since, the 30-day node count).
 *
 *   node --import tsx bench/metrics-scrape/run.ts [--db sqlite|postgres] [--nodes 100000]
 *        [--leases 100000] [--scrapes 40]
 */
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { performance } from "node:perf_hooks";
import { parseArgs } from "node:util";
import type { Insertable } from "kysely";
import { CoordinatorEvents } from "../../src/coordinator/events.ts";
import { createMetrics } from "../../src/coordinator/metrics.ts";
import { NetworkCounts } from "../../src/coordinator/registry/network-counts.ts";
import { UsageReader, usageFigures } from "../../src/coordinator/registry/network-usage.ts";
import type {
  ClusterNodesTable,
  ClustersTable,
} from "../../src/coordinator/store/cluster-schema.ts";
import type { Store } from "../../src/coordinator/store/database.ts";
import { IdPrefix, newId } from "../../src/protocol/ids.ts";
import { releasedLeaseRow } from "../../test/support/leases.ts";
import { seedNetwork, type SeededNetwork } from "../support/seeded-network.ts";
import { machine, progress, summarize } from "../support/stats.ts";

const { values: args } = parseArgs({
  options: {
    db: { type: "string", default: "sqlite" },
    nodes: { type: "string", default: "100000" },
    leases: { type: "string", default: "100000" },
    scrapes: { type: "string", default: "40" },
    "open-clusters": { type: "string", default: "2500" },
  },
});
const nodeCount = Number(args.nodes);
const leaseCount = Number(args.leases);
const scrapes = Number(args.scrapes);
const openClusters = Number(args["open-clusters"]);
const LEASES_PER_CLUSTER = 4;
const BATCH = 500;
const HOUR_MS = 3_600_000;

/**
 * Clusters of four leases each over random nodes: `--open-clusters` running (started in the last
 * hour), the rest ended over the last 90 days.
 */
async function seedLeases(store: Store, nowMs: number): Promise<void> {
  const nodes = await store.db.selectFrom("nodes").select(["id", "account_id"]).execute();
  const clusters: Insertable<ClustersTable>[] = [];
  const leases: Insertable<ClusterNodesTable>[] = [];
  for (let c = 0; c * LEASES_PER_CLUSTER < leaseCount; c++) {
    const open = c < openClusters;
    const startedAt = nowMs - Math.floor(Math.random() * (open ? 1 : 90 * 24) * HOUR_MS);
    const id = newId(IdPrefix.cluster, startedAt);
    clusters.push({
      id,
      account_id: nodes[0]!.account_id,
      kind: "batch",
      status: open ? "running" : "completed",
      spec: "{}",
      node_count: LEASES_PER_CLUSTER,
      hours: 4,
      currency: "USDC",
      idempotency_key: null,
      created_at: startedAt,
      started_at: startedAt,
      ends_at: startedAt + 4 * HOUR_MS,
      ended_at: open ? null : startedAt + 4 * HOUR_MS,
    });
    for (let seq = 0; seq < LEASES_PER_CLUSTER; seq++) {
      const node = nodes[Math.floor(Math.random() * nodes.length)]!;
      leases.push(
        releasedLeaseRow({
          clusterId: id,
          rank: seq,
          nodeId: node.id,
          supplierAccountId: node.account_id,
          startedAt,
          billedUntil: null,
          endedAt: open ? null : startedAt + 4 * HOUR_MS,
        }),
      );
    }
  }
  await store.db.transaction().execute(async (tx) => {
    for (let i = 0; i < clusters.length; i += BATCH)
      await tx
        .insertInto("clusters")
        .values(clusters.slice(i, i + BATCH))
        .execute();
    for (let i = 0; i < leases.length; i += BATCH)
      await tx
        .insertInto("cluster_nodes")
        .values(leases.slice(i, i + BATCH))
        .execute();
  });
}

async function timed(count: number, call: () => Promise<unknown>) {
  const samples: number[] = [];
  for (let i = 0; i < count; i++) {
    const startMs = performance.now();
    await call();
    samples.push(performance.now() - startMs);
  }
  return summarize(samples);
}

const home = await mkdtemp(join(tmpdir(), "tandem-bench-metrics-"));
let network: SeededNetwork | undefined;
try {
  const machineAtStart = machine();
  network = await seedNetwork(args.db, home, nodeCount);
  const { store } = network;
  const nowMs = Date.now();
  await seedLeases(store, nowMs);
  progress(`seeded ${nodeCount} nodes and ${leaseCount} leases (${args.db})`);

  const usageQueries = await timed(scrapes, () => usageFigures(store.db, store.dialect, nowMs));
  progress(`first refresh: p50 ${usageQueries.p50} ms`);

  const counts = new NetworkCounts(store.db, new CoordinatorEvents());
  await counts.start();
  const clock = { now: () => Date.now() };
  const scrapeWith = (maxAgeMs: number) => {
    const usage = new UsageReader(
      store.db,
      store.dialect,
      clock,
      (e) => {
        throw e;
      },
      maxAgeMs,
    );
    const metrics = createMetrics({ supply: () => counts.snapshot(), usage: () => usage.read() });
    return () => metrics.registry.metrics();
  };
  const cached = scrapeWith(60_000);
  await cached();
  const scrapeCached = await timed(scrapes, cached);
  const refreshed = scrapeWith(0);
  await refreshed(); // its first refresh reads all history
  const scrapeUncached = await timed(scrapes, refreshed);
  await counts.stop();
  const figures = await usageFigures(store.db, store.dialect, nowMs);
  process.stdout.write(
    JSON.stringify(
      {
        benchmark: "metrics-scrape",
        db: args.db,
        nodes: nodeCount,
        leases: leaseCount,
        figures,
        firstRefreshMs: usageQueries,
        openClusters,
        scrapeCachedMs: scrapeCached,
        scrapeRefreshedMs: scrapeUncached,
        machineAtStart,
        machineAtEnd: machine(),
      },
      null,
      2,
    ) + "\n",
  );
  await store.close();
} finally {
  await network?.stop();
  await rm(home, { recursive: true, force: true });
}
