// Failover on a manual clock with simulated workers over real WebSockets (issue 5): standbys take
// a lost rank at once, each kind restarts what it must, fresh nodes replace when no standby is
// left, the failed node is slashed to the consumer's benefit, and every unit is accounted for.
import assert from "node:assert/strict";
import { it } from "node:test";
import { forEachDatabase, httpRequest, assertError } from "./support/coordinator.ts";
import { MINUTE, simulatedNetwork, type SimulatedNetwork } from "./support/simulated-network.ts";

const setup = simulatedNetwork;
/** Deploys and brings every rank up: head first, then the others against its port. */
async function running(
  s: SimulatedNetwork,
  request: { kind: "batch" | "torch" | "dask"; nodes: number; shadow?: number; hours?: number },
) {
  const cluster = await s.client.deployCluster({
    kind: request.kind,
    nodes: request.nodes,
    ...(request.shadow === undefined ? {} : { shadow: request.shadow }),
    hours: request.hours ?? 2,
    gpuModel: "cpu",
    command: ["true"],
  });
  const head = s.roleOf(cluster, 0);
  const start = await s.nextStart(head);
  assert.deepEqual([start.rank, start.attempt, start.head], [0, 0, null]);
  head.send({ type: "job-accepted", clusterId: cluster.id, rank: 0, attempt: 0, port: 29_500 });
  for (let rank = 1; rank < request.nodes; rank++) {
    const worker = s.roleOf(cluster, rank);
    const message = await s.nextStart(worker);
    assert.equal(message.head?.port, 29_500);
    worker.send({ type: "job-accepted", clusterId: cluster.id, rank, attempt: 0, port: null });
  }
  return s.until(cluster.id, (v) => v.status === "running", "ran");
}

forEachDatabase("failover", (db) => {
  it("moves a lost batch rank to its standby at once, slashes the node and pays each lease its minutes", async (t) => {
    const s = await setup(db, t, 3);
    const quote = await s.client.quote({ nodes: 2, shadow: 1, hours: 2, gpuModel: "cpu" });
    assert.deepEqual(
      quote.lines.map((l) => [l.standby, l.pricePerHour]),
      [
        [false, "0.020000"],
        [false, "0.020000"],
        [true, "0.002000"],
      ],
      "the standby is quoted at 10% of its price",
    );
    const cluster = await running(s, { kind: "batch", nodes: 2, shadow: 1 });
    const standbyLease = cluster.nodes.find((n) => n.role === "standby")!;
    assert.equal(standbyLease.status, "staged");
    assert.equal((await s.client.getNode(standbyLease.nodeId)).status, "standby");
    assert.equal((await s.costs(cluster.id)).rental, "0.084000");

    const victim = s.roleOf(cluster, 1);
    const standby = s.byNode(standbyLease.nodeId);
    const reputationBefore = (await s.client.getNode(victim.nodeId)).reputation;
    s.clock.advance(5 * MINUTE);
    await s.silence(victim); // last beat at 5 min, declared dead 7 s later

    const takeover = await s.nextStart(standby);
    assert.deepEqual(
      [takeover.rank, takeover.attempt, takeover.worldSize, takeover.head?.port],
      [1, 1, 2, 29_500],
      "the standby runs rank 1 against the running head",
    );
    standby.send({ type: "job-accepted", clusterId: cluster.id, rank: 1, attempt: 1, port: null });
    const view = await s.tookOver(cluster.id);
    assert.equal(view.status, "running", "the cluster carries on");
    const failover = view.events.find((e) => e.type === "failover")!.detail;
    assert.equal(failover.rank, 1);
    assert.equal(failover.fromNodeId, victim.nodeId);
    assert.equal(failover.toNodeId, standby.nodeId);
    assert.equal(failover.via, "standby");
    assert.equal(failover.restart, "rank");
    assert.match(String(failover.reason), /went offline/);
    assert.equal(view.events.find((e) => e.type === "takeover")!.detail.takeoverMs, 0);
    assert.deepEqual(
      view.nodes.map((n) => [n.nodeId, n.rank, n.status, n.active]),
      [
        [s.roleOf(cluster, 0).nodeId, 0, "running", true],
        [victim.nodeId, 1, "lost", false],
        [standby.nodeId, null, "promoted", false],
        [standby.nodeId, 1, "running", true],
      ],
    );
    const slashed = view.events.find((e) => e.type === "slashed")!.detail;
    assert.equal(slashed.owed, "0.020000", "one hour of the lost lease's rate");
    const reputationAfter = (await s.client.getNode(victim.nodeId)).reputation;
    assert.ok(
      reputationAfter < reputationBefore,
      `the lost node's reputation drops (${reputationBefore} → ${reputationAfter})`,
    );

    // The dead worker comes back: it gets no rank, and its late exit changes nothing.
    const back = await victim.reconnect();
    t.after(() => back.socket.terminate());
    back.send({
      type: "job-exit",
      clusterId: cluster.id,
      rank: 1,
      attempt: 0,
      exitCode: 1,
      signal: null,
      error: null,
    });
    s.clock.advance(25 * MINUTE); // 30 min 7 s after the start
    await s.beat([s.roleOf(cluster, 0), standby, back]);
    await s.net.coordinator.ticker.tick();
    assert.equal((await s.client.getCluster(cluster.id)).status, "running");
    const ended = await s.client.terminateCluster(cluster.id);
    assert.equal(ended.status, "terminated");

    // Per lease, whole minutes at its rate (0.02/h = 20,000 units): rank 0 for 30 min (10,000);
    // the lost node to its last beat, 5 min (1,666); the standby at 0.002/h until promoted,
    // 5 min 7 s (166); rank 1 on the standby from its accept to the end, 25 min 0 s (8,333).
    const c = await s.costs(cluster.id);
    assert.equal(c.served, "0.020165");
    assert.equal(c.refunded, "0.063835");
    assert.equal(c.escrow, "0.000000");
    // The slash took the supplier's unpaid earnings at the time (its lost lease's net pay).
    assert.equal(slashed.taken, "0.001654");
    assert.equal(c.slashCompensation, "0.001654");
    const audit = await s.net.client(s.net.adminKey).ledgerAudit();
    assert.equal(audit.ok, true);
    assert.equal((await s.client.getNode(victim.nodeId)).status, "available");
  });

  it("restarts every torch rank with a fresh rendezvous when one is lost", async (t) => {
    const s = await setup(db, t, 3);
    const cluster = await running(s, { kind: "torch", nodes: 2, shadow: 1 });
    const head = s.roleOf(cluster, 0);
    const victim = s.roleOf(cluster, 1);
    const standby = s.roleOf(cluster, null);
    s.clock.advance(MINUTE);
    await s.silence(victim);

    const restart = await s.nextStart(head);
    assert.deepEqual([restart.rank, restart.attempt, restart.head], [0, 1, null]);
    head.send({ type: "job-accepted", clusterId: cluster.id, rank: 0, attempt: 1, port: 29_501 });
    const joined = await s.nextStart(standby);
    assert.deepEqual([joined.rank, joined.attempt, joined.head?.port], [1, 1, 29_501]);
    // A late message from the head's first run is ignored: the cluster does not fail on it.
    head.send({
      type: "job-exit",
      clusterId: cluster.id,
      rank: 0,
      attempt: 0,
      exitCode: 137,
      signal: "SIGKILL",
      error: null,
    });
    standby.send({ type: "job-accepted", clusterId: cluster.id, rank: 1, attempt: 1, port: null });
    const view = await s.tookOver(cluster.id);
    assert.equal(view.status, "running");
    assert.equal(view.events.find((e) => e.type === "failover")!.detail.restart, "all");
    assert.ok(!view.events.some((e) => e.type === "rank-exited"), "the stale exit was ignored");
  });

  it("places a fresh node when no standby is left, and fails (refunded) when none fits", async (t) => {
    const s = await setup(db, t, 2);
    const cluster = await running(s, { kind: "batch", nodes: 1 });
    const first = s.roleOf(cluster, 0);
    const spare = s.pool.find((w) => w !== first)!;
    await s.silence(first);
    const moved = await s.nextStart(spare);
    assert.deepEqual([moved.rank, moved.attempt, moved.head], [0, 1, null]);
    spare.send({ type: "job-accepted", clusterId: cluster.id, rank: 0, attempt: 1, port: 29_502 });
    const view = await s.tookOver(cluster.id);
    assert.equal(view.events.find((e) => e.type === "failover")!.detail.via, "replacement");

    await s.silence(spare); // nothing left to take rank 0
    const failed = await s.until(cluster.id, (v) => v.status === "failed", "failed");
    assert.match(String(failed.events.at(-1)!.detail.reason), /no standby or replacement/);
    const c = await s.costs(cluster.id);
    assert.equal(c.escrow, "0.000000");
    assert.equal((await s.net.client(s.net.adminKey).ledgerAudit()).ok, true);
  });

  it("refuses a shadow count beyond supply, naming the shortfall, and charges nothing", async (t) => {
    const s = await setup(db, t, 2);
    const response = await httpRequest(s.net.url, "POST", "/v1/clusters", {
      apiKey: s.consumer.apiKey,
      body: { kind: "batch", nodes: 2, shadow: 1, hours: 1, gpuModel: "cpu", command: ["true"] },
    });
    const error = assertError(response, 409, "NO_CAPACITY");
    assert.deepEqual(
      [error.details?.needed, error.details?.shadow, error.details?.shortfall],
      [3, 1, 1],
    );
    assert.match(error.message, /need 3/);
    const wallet = await s.client.wallet();
    assert.equal(wallet.balances.find((b) => b.currency === "USDC")?.wallet, "10.000000");
  });

  it("leaves a consumer's failing job alone: no failover and no slash", async (t) => {
    const s = await setup(db, t, 2);
    const cluster = await running(s, { kind: "batch", nodes: 1, shadow: 1 });
    s.roleOf(cluster, 0).send({
      type: "job-exit",
      clusterId: cluster.id,
      rank: 0,
      attempt: 0,
      exitCode: 3,
      signal: null,
      error: null,
    });
    const view = await s.until(cluster.id, (v) => v.status === "failed", "failed");
    assert.ok(!view.events.some((e) => e.type === "failover" || e.type === "slashed"));
    assert.equal((await s.costs(cluster.id)).slashCompensation, "0.000000");
  });

  it("fails over a node that cannot run its part, and slashes it", async (t) => {
    const s = await setup(db, t, 2);
    const cluster = await running(s, { kind: "batch", nodes: 1, shadow: 1 });
    const broken = s.roleOf(cluster, 0);
    const standby = s.roleOf(cluster, null);
    broken.send({
      type: "job-exit",
      clusterId: cluster.id,
      rank: 0,
      attempt: 0,
      exitCode: null,
      signal: null,
      error: "bwrap: cannot create the sandbox",
    });
    const moved = await s.nextStart(standby);
    assert.deepEqual([moved.rank, moved.attempt], [0, 1]);
    const view = await s.until(
      cluster.id,
      (v) => v.events.some((e) => e.type === "slashed"),
      "slashed",
    );
    assert.match(
      String(view.events.find((e) => e.type === "failover")!.detail.reason),
      /could not run rank 0/,
    );
  });

  it("drains a standby at once: it holds no rank to hand over", async (t) => {
    const s = await setup(db, t, 2);
    const cluster = await running(s, { kind: "batch", nodes: 1, shadow: 1 });
    const standby = s.roleOf(cluster, null);
    standby.send({ type: "drain", reason: "maintenance" });
    assert.equal((await standby.next()).type, "job-stop");
    assert.deepEqual(await standby.next(), { type: "drained" });
    const view = await s.client.getCluster(cluster.id);
    assert.equal(view.status, "running");
    assert.ok(view.events.some((e) => e.type === "standby-lost"));
    assert.ok(!view.events.some((e) => e.type === "slashed"));
  });

  it("fails a node over when its GPU health check fails", async (t) => {
    const s = await setup(db, t, 2);
    const cluster = await running(s, { kind: "batch", nodes: 1, shadow: 1 });
    const sick = s.roleOf(cluster, 0);
    const standby = s.roleOf(cluster, null);
    sick.send({
      type: "heartbeat",
      seq: 1,
      utilization: { cpuPct: 1, memoryUsedMiB: 1, gpus: [], gpuFault: "1 of 1 GPUs gone: GPU-0" },
    });
    const moved = await s.nextStart(standby);
    assert.deepEqual([moved.rank, moved.attempt], [0, 1]);
    const view = await s.client.getCluster(cluster.id);
    assert.match(
      String(view.events.find((e) => e.type === "failover")!.detail.reason),
      /GPU health check failed: 1 of 1 GPUs gone/,
    );
    assert.equal((await sick.closed()).code, 4503);
  });

  it("drains a worker: its rank goes to the standby without a slash, then it is told it may stop", async (t) => {
    const s = await setup(db, t, 3);
    const cluster = await running(s, { kind: "batch", nodes: 2, shadow: 1 });
    const leaving = s.roleOf(cluster, 1);
    const standby = s.roleOf(cluster, null);
    leaving.send({ type: "drain", reason: "maintenance" });
    const moved = await s.nextStart(standby);
    assert.deepEqual([moved.rank, moved.attempt], [1, 1]);
    const stop = await leaving.next();
    assert.equal(stop.type, "job-stop");
    assert.deepEqual(await leaving.next(), { type: "drained" });
    const view = await s.client.getCluster(cluster.id);
    assert.ok(!view.events.some((e) => e.type === "slashed"), "an announced drain is not slashed");
    assert.equal(view.nodes.find((n) => n.nodeId === leaving.nodeId)?.status, "handed-over");
    // A draining node takes no new lease.
    const search = await s.client.search({ nodes: 1, gpuModel: "cpu" });
    assert.ok(!search.offers.some((o) => o.nodeId === leaving.nodeId));
    const history = await s.client.nodeHistory(leaving.nodeId);
    const ended = history.items.find((h) => h.action === "lease-ended");
    assert.equal(ended?.detail.outcome, "drained");
  });
});
