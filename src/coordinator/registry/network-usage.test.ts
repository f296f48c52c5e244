import assert from "node:assert/strict";
import { test } from "node:test";
import { leaseServedMinutes } from "../../core/failover.ts";
import { forEachDatabase } from "../../../test/support/coordinator.ts";
import { fixtureHardware, type GpuFixture } from "../../../test/support/devices.ts";
import { releasedLeaseRow } from "../../../test/support/leases.ts";
import { openRegistry, type Registry } from "../../../test/support/registry.ts";
import { IdPrefix, newId } from "../../protocol/ids.ts";
import { UsageReader, UsageTracker, usageFigures } from "./network-usage.ts";

const MINUTE = 60_000;
const DAY = 1_440 * MINUTE;

interface ClusterFixture {
  id: string;
  startedAt: number | null;
  endsAt: number | null;
  endedAt: number | null;
  leases: Array<{ node: string; startedAt: number | null; billedUntil: number | null }>;
}

/** A cluster and its leases as rows, as the scheduler leaves them (fixture rows in a real store). */
async function insertCluster(
  r: Registry,
  c: ClusterFixture,
  nodes: Record<string, string>,
  status = c.endedAt === null ? "running" : "terminated",
): Promise<void> {
  await r.store.db
    .insertInto("clusters")
    .values({
      id: c.id,
      account_id: r.supplierId,
      kind: "batch",
      status,
      spec: "{}",
      node_count: c.leases.length,
      hours: 10,
      currency: "USDC",
      idempotency_key: null,
      created_at: c.startedAt ?? 0,
      started_at: c.startedAt,
      ends_at: c.endsAt,
      ended_at: c.endedAt,
    })
    .execute();
  for (const [rank, lease] of c.leases.entries())
    await r.store.db
      .insertInto("cluster_nodes")
      .values(
        releasedLeaseRow({
          clusterId: c.id,
          rank,
          nodeId: nodes[lease.node]!,
          supplierAccountId: r.supplierId,
          startedAt: lease.startedAt,
          billedUntil: lease.billedUntil,
          endedAt: null,
        }),
      )
      .execute();
}

forEachDatabase("network usage", (db) => {
  test("GPU-hours served: each lease's billed whole minutes × its node's GPUs", async (t) => {
    const r = await openRegistry(db, t);
    const t0 = r.clock.now();
    const node = async (fixture: GpuFixture) => {
      const hardware = await fixtureHardware(fixture);
      return (await r.register({ region: "eu-west", zone: "eu-west-a", hardware })).nodeId;
    };
    const gpus = { h100: 8, rtx: 1, cpu: 0 };
    const ids = { h100: await node("h100x8"), rtx: await node("rtx4090"), cpu: await node("none") };
    const clusters: ClusterFixture[] = [
      // Running: a lease started 30 s in, one that lost its node after 10 min 59 s.
      {
        id: "clu_00000000000000000000000001",
        startedAt: t0,
        endsAt: t0 + 120 * MINUTE,
        endedAt: null,
        leases: [
          { node: "h100", startedAt: t0 + 30_000, billedUntil: null },
          { node: "rtx", startedAt: t0, billedUntil: t0 + 10 * MINUTE + 59_000 },
        ],
      },
      // Terminated at 45 min of 600 paid; a CPU node serves no GPU-hours.
      {
        id: "clu_00000000000000000000000002",
        startedAt: t0,
        endsAt: t0 + 600 * MINUTE,
        endedAt: t0 + 45 * MINUTE,
        leases: [
          { node: "rtx", startedAt: t0, billedUntil: null },
          { node: "cpu", startedAt: t0, billedUntil: null },
        ],
      },
      // Expired at its paid end (30 min), ended a minute later.
      {
        id: "clu_00000000000000000000000003",
        startedAt: t0,
        endsAt: t0 + 30 * MINUTE,
        endedAt: t0 + 31 * MINUTE,
        leases: [{ node: "h100", startedAt: t0, billedUntil: null }],
      },
      // Never started.
      {
        id: "clu_00000000000000000000000004",
        startedAt: null,
        endsAt: null,
        endedAt: t0 + MINUTE,
        leases: [{ node: "h100", startedAt: null, billedUntil: null }],
      },
    ];
    for (const c of clusters) await insertCluster(r, c, ids);
    const nowMs = t0 + 90 * MINUTE + 59_000;
    // What billing counts, lease by lease (a cluster's end bounds it like its paid end).
    let gpuMinutes = 0;
    for (const c of clusters)
      for (const lease of c.leases)
        gpuMinutes +=
          gpus[lease.node as keyof typeof gpus] *
          leaseServedMinutes({
            clusterStartedAtMs: c.startedAt,
            clusterEndsAtMs: Math.min(c.endsAt ?? Infinity, c.endedAt ?? Infinity),
            leaseStartedAtMs: lease.startedAt,
            billedUntilMs: lease.billedUntil,
            nowMs,
          });
    // 8 × 90 + 1 × 10 + 1 × 45 + 8 × 30.
    assert.equal(gpuMinutes, 1015);
    const figures = await usageFigures(r.store.db, r.store.dialect, nowMs);
    assert.deepEqual(figures, { gpuHoursServed: 1015 / 60, nodesSeen30d: 0 });
  });

  test("nodes seen in 30 days; the reader caches a minute and keeps its last figures on failure", async (t) => {
    const r = await openRegistry(db, t);
    const hardware = await fixtureHardware("none");
    const register = async () =>
      (await r.register({ region: "eu-west", zone: "eu-west-a", hardware })).nodeId;
    const [recent, old, never] = [await register(), await register(), await register()];
    const now = r.clock.now();
    const seen = (id: string, at: number) =>
      r.store.db.updateTable("nodes").set({ last_seen_at: at }).where("id", "=", id).execute();
    await seen(recent, now - 30 * DAY);
    await seen(old, now - 30 * DAY - 1);

    const errors: unknown[] = [];
    const reader = new UsageReader(r.store.db, r.store.dialect, r.clock, (e) => errors.push(e));
    assert.equal((await reader.read())?.nodesSeen30d, 1);
    // A minute on, the boundary node has left the window; two nodes are heard from.
    await seen(old, now);
    await seen(never, now);
    r.clock.advance(59_999);
    assert.equal((await reader.read())?.nodesSeen30d, 1, "cached for a minute");
    r.clock.advance(1);
    assert.equal((await reader.read())?.nodesSeen30d, 2);

    await r.store.dispose();
    r.clock.advance(60_000);
    assert.deepEqual(await reader.read(), { gpuHoursServed: 0, nodesSeen30d: 2 });
    assert.equal(errors.length, 1);
    const fresh = new UsageReader(r.store.db, r.store.dialect, r.clock, (e) => errors.push(e));
    assert.equal(await fresh.read(), undefined);
    assert.equal(errors.length, 2);
  });

  test("a tracker adds what changed and always equals a count of all history", async (t) => {
    const r = await openRegistry(db, t);
    const t0 = r.clock.now();
    const hardware = await fixtureHardware("h100x8");
    const h100 = (await r.register({ region: "eu-west", zone: "eu-west-a", hardware })).nodeId;
    const tracker = new UsageTracker(r.store.db, r.store.dialect);
    const gpuMinutesAt = async (atMs: number) => {
      const figures = await tracker.figures(atMs);
      assert.deepEqual(figures, await usageFigures(r.store.db, r.store.dialect, atMs));
      return figures.gpuHoursServed * 60;
    };
    const end = (id: string, atMs: number) =>
      r.store.db
        .updateTable("clusters")
        .set({ status: "terminated", ended_at: atMs })
        .where("id", "=", id)
        .execute();
    const cluster = (idAtMs: number, startedAt: number, endedAt: number | null) => ({
      id: newId(IdPrefix.cluster, idAtMs),
      startedAt,
      endsAt: startedAt + 600 * MINUTE,
      endedAt,
      leases: [{ node: "h100", startedAt, billedUntil: null }],
    });
    const nodes = { h100 };

    // Made a day ago (far behind any recent id), running for an hour.
    const old = cluster(t0 - DAY, t0 - 60 * MINUTE, null);
    await insertCluster(r, old, nodes);
    assert.equal(await gpuMinutesAt(t0), 8 * 60);
    // It ends at 10 minutes; a cluster made at 25 minutes ends at 40, both before the next look.
    await end(old.id, t0 + 10 * MINUTE);
    await insertCluster(r, cluster(t0 + 25 * MINUTE, t0 + 25 * MINUTE, t0 + 40 * MINUTE), nodes);
    assert.equal(await gpuMinutesAt(t0 + 45 * MINUTE), 8 * (70 + 15));
    // One made at 50 runs; then ends at 70: counted once, however often the tracker looks.
    const recent = cluster(t0 + 50 * MINUTE, t0 + 50 * MINUTE, null);
    await insertCluster(r, recent, nodes);
    assert.equal(await gpuMinutesAt(t0 + 60 * MINUTE), 8 * (70 + 15 + 10));
    await end(recent.id, t0 + 70 * MINUTE);
    for (const atMs of [t0 + 80 * MINUTE, t0 + 90 * MINUTE])
      assert.equal(await gpuMinutesAt(atMs), 8 * (70 + 15 + 20));
    // A cluster still within the id margin after it ended is looked up again: counted once.
    await insertCluster(r, cluster(t0 + 100 * MINUTE, t0 + 100 * MINUTE, t0 + 102 * MINUTE), nodes);
    for (const atMs of [t0 + 103 * MINUTE, t0 + 104 * MINUTE, t0 + DAY])
      assert.equal(await gpuMinutesAt(atMs), 8 * (70 + 15 + 20 + 2));
  });
});
