// Autoscaling (issue 5): a batch cluster with a task queue grows while tasks per node exceed its
// target and the escrow can pay, shrinks idle nodes, hands a lost node's task to another node,
// records every decision with its reason, and bills only the node-time it held.
import assert from "node:assert/strict";
import { it } from "node:test";
import { money } from "../src/core/money.ts";
import { assertError, forEachDatabase, httpRequest } from "./support/coordinator.ts";
import { simulatedNetwork, type JobStart, type Worker } from "./support/simulated-network.ts";

const MINUTE = 60_000;

forEachDatabase("autoscaling", (db) => {
  it("grows with the queue, runs each task once, shrinks idle nodes and bills held time only", async (t) => {
    const s = await simulatedNetwork(db, t, 3, { scaleDownIdleMs: 60_000 });
    const request = {
      nodes: 1,
      hours: 1,
      gpuModel: "cpu",
      autoscale: { min: 1, max: 3, tasksPerNode: 1 },
    };
    const quote = await s.client.quote(request);
    assert.equal(quote.lines.length, 3, "growth to max is prepaid");
    assert.equal(quote.rental, "0.060000");

    const cluster = await s.client.deployCluster({
      ...request,
      kind: "batch",
      command: ["echo", "task-1"],
    });
    assert.equal(cluster.status, "running");
    assert.deepEqual(cluster.autoscale, { min: 1, max: 3, tasksPerNode: 1 });
    const first = s.byNode(cluster.nodes[0]!.nodeId);
    const start1 = await s.nextStart(first);
    assert.deepEqual([start1.command, start1.attempt], [["echo", "task-1"], 1]);
    first.send({ type: "job-accepted", clusterId: cluster.id, rank: 0, attempt: 1, port: null });

    // Two more tasks wait with one node busy: the cluster grows to three.
    await s.client.submitTask(cluster.id, ["echo", "task-2"]);
    await s.client.submitTask(cluster.id, ["echo", "task-3"]);
    const grown = await s.until(
      cluster.id,
      (v) => v.nodes.filter((n) => n.active).length === 3,
      "grew",
    );
    const up = grown.events.filter((e) => e.type === "scaled-up");
    assert.ok(up.length >= 1);
    assert.match(String(up.at(-1)!.detail.reason), /queued \+ \d running tasks at 1 per node/);
    const others = s.pool.filter((w) => w !== first);
    const starts = new Map<Worker, JobStart>();
    for (const worker of others) starts.set(worker, await s.nextStart(worker));
    assert.deepEqual(
      [...starts.values()].map((m) => m.command[1]).sort(),
      ["task-2", "task-3"],
      "each queued task runs once, on its own node",
    );

    // Everything finishes.
    const finishTask = (worker: Worker, m: JobStart) => {
      worker.send({
        type: "job-accepted",
        clusterId: cluster.id,
        rank: m.rank,
        attempt: m.attempt,
        port: null,
      });
      worker.send({
        type: "job-exit",
        clusterId: cluster.id,
        rank: m.rank,
        attempt: m.attempt,
        exitCode: 0,
        signal: null,
        error: null,
      });
    };
    finishTask(first, start1);
    for (const [worker, m] of starts) finishTask(worker, m);
    await s.until(cluster.id, () => true, "read");
    for (let i = 0; i < 500; i++) {
      const tasks = await s.client.clusterTasks(cluster.id);
      if (tasks.items.every((x) => x.status === "done")) break;
      await new Promise((r) => setTimeout(r, 10));
    }
    assert.deepEqual(
      (await s.client.clusterTasks(cluster.id)).items.map((x) => [x.seq, x.status, x.exitCode]),
      [
        [1, "done", 0],
        [2, "done", 0],
        [3, "done", 0],
      ],
    );

    // Idle for a minute with nothing queued: back down to the minimum.
    s.clock.advance(MINUTE + 1000);
    await s.beat(s.pool);
    await s.net.coordinator.ticker.tick();
    const shrunk = await s.until(
      cluster.id,
      (v) => v.nodes.filter((n) => n.active).length === 1,
      "shrank",
    );
    const down = shrunk.events.find((e) => e.type === "scaled-down")!;
    assert.match(String(down.detail.reason), /no queued task and idle for 60 s/);
    assert.equal((await s.net.client().networkStats()).nodes.byStatus.available, 2);

    s.clock.advance(10 * MINUTE);
    await s.beat(s.pool);
    const ended = await s.client.terminateCluster(cluster.id);
    assert.equal(ended.status, "terminated");
    const c = await s.costs(cluster.id);
    // The first node held 11 min 1 s (11 whole minutes); the two added nodes 1 min 1 s each.
    assert.equal(c.served, "0.004332", "11 + 1 + 1 minutes at 0.02/h, per lease rounded down");
    assert.equal(money(c.served) + money(c.refunded!), money(c.rental!));
    assert.equal(c.escrow, "0.000000");
  });

  it("gives a lost node's task to another node and regrows to its minimum", async (t) => {
    const s = await simulatedNetwork(db, t, 3);
    const cluster = await s.client.deployCluster({
      kind: "batch",
      nodes: 2,
      hours: 1,
      gpuModel: "cpu",
      command: ["sleep", "100"],
      autoscale: { min: 2, max: 2, tasksPerNode: 1 },
    });
    const holder = s.pool.find((w) => w.nodeId === cluster.nodes[0]!.nodeId)!;
    const task = await s.nextStart(holder);
    holder.send({
      type: "job-accepted",
      clusterId: cluster.id,
      rank: task.rank,
      attempt: 1,
      port: null,
    });
    await s.silence(holder);
    const spare = s.pool.find((w) => !cluster.nodes.some((n) => n.nodeId === w.nodeId))!;
    const idle = s.pool.find((w) => w !== holder && w !== spare)!;
    // The task goes back to the queue; the idle node takes it, and a fresh node restores min.
    const again = await s.nextStart(idle);
    assert.deepEqual([again.command, again.attempt], [["sleep", "100"], 1]);
    const view = await s.until(
      cluster.id,
      (v) => v.events.some((e) => e.type === "scaled-up"),
      "regrew",
    );
    assert.ok(view.events.some((e) => e.type === "node-lost" && e.detail.task === 1));
    assert.ok(view.events.some((e) => e.type === "slashed"));
    assert.match(
      String(view.events.find((e) => e.type === "scaled-up")!.detail.reason),
      /below the minimum of 2/,
    );
    assert.equal(view.nodes.filter((n) => n.active).length, 2);
    assert.ok(view.nodes.some((n) => n.active && n.nodeId === spare.nodeId));
  });

  it("refuses autoscaling outside batch, bounds that do not hold, and tasks on other clusters", async (t) => {
    const s = await simulatedNetwork(db, t, 1);
    const base = { nodes: 1, hours: 1, gpuModel: "cpu", command: ["true"] };
    for (const [body, pattern] of [
      [{ ...base, kind: "torch", autoscale: { min: 1, max: 2 } }, /for batch clusters/],
      [{ ...base, kind: "batch", autoscale: { min: 2, max: 1 } }, /min 2 is above max 1/],
      [{ ...base, kind: "batch", nodes: 3, autoscale: { min: 1, max: 2 } }, /outside autoscale/],
      [{ ...base, kind: "batch", shadow: 1, autoscale: { min: 1, max: 2 } }, /no standbys/],
    ] as const) {
      const response = await httpRequest(s.net.url, "POST", "/v1/clusters", {
        apiKey: s.consumer.apiKey,
        body,
      });
      assert.match(assertError(response, 400, "VALIDATION_FAILED").message, pattern);
    }
    const plain = await s.client.deployCluster({ ...base, kind: "batch" });
    const refused = await httpRequest(s.net.url, "POST", `/v1/clusters/${plain.id}/tasks`, {
      apiKey: s.consumer.apiKey,
      body: { command: ["true"] },
    });
    assertError(refused, 409, "INVALID_TRANSITION");
  });
});
