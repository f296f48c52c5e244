// Every end path of a cluster, on a manual clock, with simulated workers over real WebSockets:
// served minutes are paid exactly, the rest refunded, and every node released.
import assert from "node:assert/strict";
import { it } from "node:test";
import { ManualClock, forEachDatabase, type TestCoordinator } from "./support/coordinator.ts";
import { ErrorCode, type TandemError } from "../src/core/errors.ts";
import { moveLease } from "../src/coordinator/scheduler/cluster-lifecycle.ts";
import { runInTransaction } from "../src/coordinator/store/transaction.ts";
import { availableWorker, fund } from "./support/workers.ts";

const MINUTE = 60_000;

type Costs = Record<string, string>;

async function setup(
  db: Parameters<Parameters<typeof forEachDatabase>[1]>[0],
  t: { after(fn: () => unknown): void },
  workerCount = 1,
) {
  const clock = new ManualClock();
  const net = await db.startCoordinator({
    clock,
    config: {
      livenessSweepMs: 0,
      schedulerTickMs: 86_400_000,
      reservationTtlMs: 10_000,
    },
  });
  t.after(() => net.close());
  const { apiKey, accountId } = await net.signUp(["consumer", "supplier"]);
  await fund(net, accountId, "10");
  const workers: Array<Awaited<ReturnType<typeof availableWorker>>> = [];
  for (let i = 0; i < workerCount; i++) {
    const worker = await availableWorker(net, apiKey, `eu-west-${"abc"[i]}`);
    t.after(() => worker.socket.terminate());
    workers.push(worker);
  }
  const worker = workers[0]!;
  const client = net.client(apiKey);
  for (
    let i = 0;
    i < 500 && (await client.networkStats()).nodes.byStatus.available !== workerCount;
    i++
  )
    await new Promise((r) => setTimeout(r, 20));
  const costs = async (id: string) =>
    (await (
      await fetch(`${net.url}/v1/clusters/${id}/costs`, {
        headers: { authorization: `Bearer ${apiKey}` },
      })
    ).json()) as Costs;
  const deploy = async (hours = 2) => {
    const cluster = await client.deployCluster({
      kind: "batch",
      nodes: 1,
      hours,
      gpuModel: "cpu",
      command: ["true"],
    });
    const start = await worker.next();
    assert.equal(start.type, "job-start");
    return cluster;
  };
  const accept = (clusterId: string) =>
    worker.send({ type: "job-accepted", clusterId, rank: 0, attempt: 0, port: 29_500 });
  const until = async (clusterId: string, status: string) => {
    for (let i = 0; i < 1000; i++) {
      const view = await client.getCluster(clusterId);
      if (view.status === status) return view;
      await new Promise((r) => setTimeout(r, 10));
    }
    throw new Error(`cluster never became ${status}`);
  };
  /** A heartbeat from a worker (the first by default), once the coordinator has taken it in. */
  const heartbeat = async (from = worker) => {
    const { detector } = net.coordinator.gateway;
    const before = detector.lastPayload(from.nodeId);
    const utilization = { cpuPct: 1, memoryUsedMiB: 1, gpus: [] };
    from.send({ type: "heartbeat", seq: Date.now(), utilization });
    for (let i = 0; i < 500 && detector.lastPayload(from.nodeId) === before; i++)
      await new Promise((r) => setTimeout(r, 5));
  };
  return { clock, net, client, worker, workers, costs, deploy, accept, until, heartbeat };
}

async function availableNodes(net: TestCoordinator): Promise<number> {
  return (await net.client().networkStats()).nodes.byStatus.available ?? 0;
}

/** Two one-node clusters on the two workers of `setup(db, t, 2)`, running for 15 minutes, heard. */
async function twoRunningClusters(s: Awaited<ReturnType<typeof setup>>) {
  const clusters = [];
  for (let i = 0; i < 2; i++)
    clusters.push(
      await s.client.deployCluster({
        kind: "batch",
        nodes: 1,
        hours: 1,
        gpuModel: "cpu",
        command: ["true"],
      }),
    );
  for (const worker of s.workers) {
    const start = await worker.next();
    if (start.type !== "job-start") assert.fail(`expected job-start, got ${start.type}`);
    worker.send({
      type: "job-accepted",
      clusterId: start.clusterId,
      rank: 0,
      attempt: 0,
      port: 29_500,
    });
  }
  for (const cluster of clusters) await s.until(cluster.id, "running");
  s.clock.advance(15 * MINUTE);
  for (const worker of s.workers) await s.heartbeat(worker);
  return clusters;
}

forEachDatabase("cluster lifecycle", (db) => {
  it("pays served minutes, refunds the rest on termination, and frees the node", async (t) => {
    const s = await setup(db, t);
    const quote = await s.client.quote({ nodes: 1, hours: 2, gpuModel: "cpu" });
    assert.deepEqual(
      [
        quote.rental,
        quote.fees.reservationConsumer,
        quote.fees.payment,
        quote.consumerTotal,
        quote.supplierPayout,
      ],
      ["0.040000", "0.000100", "0.000800", "0.040900", "0.039700"],
    );
    const cluster = await s.deploy(2);
    assert.equal(
      (await s.costs(cluster.id)).charged,
      quote.consumerTotal,
      "charged exactly the quote",
    );
    s.accept(cluster.id);
    await s.until(cluster.id, "running");
    s.clock.advance(30 * MINUTE + 59_000);
    await s.heartbeat(); // paid only while heard from (job-resync.test.ts)
    await s.net.coordinator.ticker.tick();
    assert.equal((await s.costs(cluster.id)).served, "0.010000", "30 whole minutes of 0.02/h");
    const ended = await s.client.terminateCluster(cluster.id);
    assert.equal(ended.status, "terminated");
    const costs = await s.costs(cluster.id);
    assert.deepEqual(
      [
        costs.rental,
        costs.served,
        costs.refunded,
        costs.escrow,
        costs.paidOut,
        costs.supplierFees,
        costs.burned,
      ],
      ["0.040000", "0.010000", "0.030000", "0.000000", "0.009925", "0.000025", "0.000050"],
    );
    assert.equal(await availableNodes(s.net), 1);
    assert.deepEqual(await s.worker.next(), {
      type: "job-stop",
      clusterId: cluster.id,
      reason: `terminated by account:${(await s.client.me()).accountId}`,
    });
  });

  it("settles every running cluster in one settlement pass per tick, each lease once a minute", async (t) => {
    const s = await setup(db, t, 2);
    const clusters = await twoRunningClusters(s);
    // Watch the billing calls a tick makes (the real billing runs them).
    const billing = s.net.coordinator.billing;
    const passes: string[][] = [];
    const settleLeases = billing.settleLeases.bind(billing);
    billing.settleLeases = (tx, inputs) => {
      passes.push(inputs.map((i) => i.clusterId).sort());
      return settleLeases(tx, inputs);
    };
    t.after(() => {
      billing.settleLeases = settleLeases;
    });
    const both = clusters.map((c) => c.id).sort();
    await s.net.coordinator.ticker.tick();
    assert.deepEqual(passes, [both]);
    for (const cluster of clusters)
      assert.equal((await s.costs(cluster.id)).served, "0.005000", "15 minutes of 0.02/h");
    // Ticks come every second; a lease is passed again only once its served minutes moved.
    s.clock.advance(30_000);
    await s.net.coordinator.ticker.tick();
    assert.deepEqual(passes, [both]);
    s.clock.advance(30_000);
    for (const worker of s.workers) await s.heartbeat(worker);
    await s.net.coordinator.ticker.tick();
    assert.deepEqual(passes, [both, both]);
    for (const cluster of clusters)
      assert.equal((await s.costs(cluster.id)).served, "0.005333", "16 minutes of 0.02/h");
  });

  it("a lease its escrow cannot pay is reported, and the others are still paid", async (t) => {
    const s = await setup(db, t, 2);
    const clusters = await twoRunningClusters(s);
    // The first cluster's escrow answers short, as only a broken invariant would.
    const [broken, healthy] = clusters.map((c) => c.id);
    const billing = s.net.coordinator.billing;
    const settleLeases = billing.settleLeases.bind(billing);
    billing.settleLeases = async (tx, inputs) => {
      const paid = await settleLeases(
        tx,
        inputs.filter((i) => i.clusterId !== broken),
      );
      return inputs.map((i) =>
        i.clusterId === broken
          ? {
              ok: false as const,
              code: "INSUFFICIENT_FUNDS" as const,
              details: {
                account: `escrow:${broken}`,
                currency: "USDC",
                required: "1",
                available: "0",
              },
            }
          : paid.shift()!,
      );
    };
    t.after(() => {
      billing.settleLeases = settleLeases;
    });
    await s.net.coordinator.ticker.tick();
    assert.equal((await s.costs(broken!)).served, "0.000000");
    assert.equal((await s.costs(healthy!)).served, "0.005000");
  });

  it("expires at the end of paid time, paying every minute", async (t) => {
    const s = await setup(db, t);
    const cluster = await s.deploy(1);
    s.accept(cluster.id);
    await s.until(cluster.id, "running");
    s.clock.advance(60 * MINUTE);
    await s.net.coordinator.ticker.tick();
    await s.until(cluster.id, "expired");
    const costs = await s.costs(cluster.id);
    assert.deepEqual(
      [costs.served, costs.refunded, costs.paidOut],
      ["0.020000", "0.000000", "0.019850"],
    );
    assert.equal(await availableNodes(s.net), 1);
  });

  it("lets a reservation lapse when the worker never accepts, refunding everything", async (t) => {
    const s = await setup(db, t);
    const cluster = await s.deploy(1);
    s.clock.advance(10_001);
    await s.net.coordinator.ticker.tick();
    const view = await s.until(cluster.id, "failed");
    assert.match(
      String(view.events.at(-1)?.detail.reason),
      /did not accept rank 0 within 10000 ms/,
    );
    const costs = await s.costs(cluster.id);
    assert.deepEqual([costs.served, costs.refunded], ["0.000000", "0.020000"]);
    assert.equal(await availableNodes(s.net), 1);
  });

  it("fails the cluster when its only node goes silent: paid to its last beat, then slashed", async (t) => {
    const s = await setup(db, t);
    const cluster = await s.deploy(2);
    s.accept(cluster.id);
    await s.until(cluster.id, "running");
    s.clock.advance(10 * MINUTE);
    await s.heartbeat();
    s.clock.advance(30_000);
    await s.net.coordinator.gateway.sweep();
    const view = await s.until(cluster.id, "failed");
    assert.match(
      String(view.events.at(-1)?.detail.reason),
      /went offline.*no standby or replacement/,
    );
    const costs = await s.costs(cluster.id);
    // Served to the last heartbeat (10 whole minutes), not to when the silence was noticed.
    assert.deepEqual([costs.served, costs.refunded], ["0.003333", "0.036667"]);
    // The slash (one hour: 0.02) exceeds the supplier's unpaid earnings, so all of them go to the
    // consumer; stakes do not exist yet, the rest is recorded as a shortfall.
    assert.equal(costs.slashCompensation, costs.paidOut);
    const slashed = view.events.find((e) => e.type === "slashed");
    assert.equal(slashed?.detail.owed, "0.020000");
    assert.equal(slashed?.detail.taken, costs.paidOut);
  });

  it("extends a running cluster and completes when every rank exits 0", async (t) => {
    const s = await setup(db, t);
    const cluster = await s.deploy(1);
    s.accept(cluster.id);
    await s.until(cluster.id, "running");
    const extended = await s.client.extendCluster(cluster.id, 2, "extend-once");
    assert.equal(extended.hours, 3);
    assert.equal((await s.costs(cluster.id)).rental, "0.060000");
    // A retry with the same key (an answer lost on the way) buys nothing more.
    const retried = await s.client.extendCluster(cluster.id, 2, "extend-once");
    assert.equal(retried.hours, 3);
    assert.equal((await s.costs(cluster.id)).rental, "0.060000");
    s.clock.advance(90 * MINUTE);
    s.worker.send({
      type: "job-exit",
      clusterId: cluster.id,
      rank: 0,
      attempt: 0,
      exitCode: 0,
      signal: null,
      error: null,
    });
    await s.until(cluster.id, "completed");
    const costs = await s.costs(cluster.id);
    assert.deepEqual([costs.served, costs.refunded], ["0.030000", "0.030000"]);
  });

  it("keeps every status change of the cluster and its lease, and refuses a change out of order", async (t) => {
    const s = await setup(db, t);
    const cluster = await s.deploy(1);
    s.accept(cluster.id);
    await s.until(cluster.id, "running");
    s.worker.send({
      type: "job-exit",
      clusterId: cluster.id,
      rank: 0,
      attempt: 0,
      exitCode: 0,
      signal: null,
      error: null,
    });
    await s.until(cluster.id, "completed");
    const { db: store } = s.net.coordinator.store;
    const history = await store
      .selectFrom("cluster_history")
      .select(["lease_seq", "from_status", "to_status"])
      .where("cluster_id", "=", cluster.id)
      .orderBy("id")
      .execute();
    assert.deepEqual(
      history.map((h) => [h.lease_seq, h.from_status, h.to_status]),
      [
        [null, null, "provisioning"],
        [0, null, "reserved"],
        [0, "reserved", "running"],
        [null, "provisioning", "running"],
        [0, "running", "exited"],
        [null, "running", "completed"],
        // Released at the end, the exited lease keeps its status: no row.
      ],
    );
    // A lease that has left its cluster moves no further, and a stale status changes nothing.
    const lease = { clusterId: cluster.id, seq: 0 };
    await assert.rejects(
      runInTransaction(store, (tx) =>
        moveLease(tx, { ...lease, status: "exited" }, { type: "accept" }, {}, change),
      ),
      (error: unknown) => (error as TandemError).code === ErrorCode.INVALID_TRANSITION,
    );
    const moved = await runInTransaction(store, (tx) =>
      moveLease(tx, { ...lease, status: "running" }, { type: "exit", ok: false }, {}, change),
    );
    assert.equal(moved, false, "the row is no longer running: compare-and-set refuses");
    const row = await store
      .selectFrom("cluster_nodes")
      .select(["status", "active"])
      .where("cluster_id", "=", cluster.id)
      .executeTakeFirstOrThrow();
    assert.deepEqual([row.status, row.active], ["exited", 0]);
  });
});

const change = { nowMs: 0, reason: "test" };
