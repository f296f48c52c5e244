// What a worker and the coordinator tell each other again after a lost link or a coordinator
// restart (bugs the coordinator crash test found): exits are acknowledged and may be resent
// without effect, a reserved lease's start is sent again when its worker reconnects, and a lease
// is paid no further than its worker's last sign of life, which survives a coordinator restart.
import assert from "node:assert/strict";
import { it } from "node:test";
import { forEachDatabase } from "./support/coordinator.ts";
import { heartbeat } from "./support/devices.ts";
import {
  MINUTE,
  simulatedNetwork,
  type SimulatedNetwork,
  type Worker,
} from "./support/simulated-network.ts";

const HEARTBEAT_MS = 2000;
/** The coordinator's default grace for nodes to come back after its restart. */
const RESTART_GRACE_MS = 12_000;

async function deploy(s: SimulatedNetwork, nodes: number) {
  return s.client.deployCluster({
    kind: "batch",
    nodes,
    hours: 2,
    gpuModel: "cpu",
    command: ["true"],
  });
}

/** A rank's first run (attempt 0) has its processes; the head reports its port. */
function accepted(clusterId: string, rank: number, port: number | null) {
  return { type: "job-accepted", clusterId, rank, attempt: 0, port };
}

/** The head's first run ended well. */
function headExit(clusterId: string) {
  return {
    type: "job-exit",
    clusterId,
    rank: 0,
    attempt: 0,
    exitCode: 0 as number | null,
    signal: null as string | null,
    error: null as string | null,
  };
}

/** The worker's next message of `type`, skipping others (a finished cluster's job-stop). */
async function nextOf(worker: Pick<Worker, "next">, type: string) {
  for (;;) {
    const message = await worker.next();
    if (message.type === type) return message;
  }
}

forEachDatabase("job resync", (db) => {
  it("acknowledges every exit; an exit or accept sent again changes nothing", async (t) => {
    const s = await simulatedNetwork(db, t, 1);
    const cluster = await deploy(s, 1);
    const worker = s.roleOf(cluster, 0);
    await s.nextStart(worker);
    const accept = accepted(cluster.id, 0, 29_500);
    worker.send(accept);
    await s.until(cluster.id, (v) => v.status === "running", "ran");
    s.clock.advance(3 * MINUTE);
    const exit = headExit(cluster.id);
    worker.send(exit);
    const ack = await nextOf(worker, "job-exit-ack");
    assert.deepEqual(ack, { type: "job-exit-ack", clusterId: cluster.id, rank: 0, attempt: 0 });
    const ended = await s.until(cluster.id, (v) => v.status === "completed", "completed");
    const costs = await s.costs(cluster.id);

    // The same messages again, as a worker resends them after a reconnect, later on the clock.
    s.clock.advance(5 * MINUTE);
    worker.send(accept);
    worker.send(exit);
    await nextOf(worker, "job-exit-ack"); // a known exit is acknowledged too
    const after = await s.client.getCluster(cluster.id);
    assert.deepEqual(after.events, ended.events, "no second rank-exited, head-ready or running");
    assert.deepEqual(after.nodes, ended.nodes);
    assert.deepEqual(await s.costs(cluster.id), costs);
  });

  it("ends the cluster on a resent exit when the coordinator died after recording it", async (t) => {
    const s = await simulatedNetwork(db, t, 1);
    const cluster = await deploy(s, 1);
    const worker = s.roleOf(cluster, 0);
    await s.nextStart(worker);
    worker.send(accepted(cluster.id, 0, 29_500));
    await s.until(cluster.id, (v) => v.status === "running", "ran");
    // As left by a kill between recording the exit and ending the cluster.
    await s.net.coordinator.store.db
      .updateTable("cluster_nodes")
      .set({ status: "exited", exit_code: 0 })
      .where("cluster_id", "=", cluster.id)
      .execute();
    worker.send(headExit(cluster.id));
    await nextOf(worker, "job-exit-ack");
    await s.until(cluster.id, (v) => v.status === "completed", "completed");
  });

  it("starts the other ranks as soon as the head tells its port, and once only", async (t) => {
    const s = await simulatedNetwork(db, t, 2);
    const cluster = await deploy(s, 2);
    const head = s.roleOf(cluster, 0);
    await s.nextStart(head);
    head.send({ type: "job-rendezvous", clusterId: cluster.id, rank: 0, attempt: 0, port: 29_500 });
    const other = s.roleOf(cluster, 1);
    const start = await s.nextStart(other);
    assert.equal(start.head?.port, 29_500, "started before the head accepted");
    assert.equal((await s.client.getCluster(cluster.id)).status, "provisioning");
    head.send(accepted(cluster.id, 0, 29_500));
    other.send(accepted(cluster.id, 1, null));
    const view = await s.until(cluster.id, (v) => v.status === "running", "ran");
    assert.equal(view.events.filter((e) => e.type === "head-ready").length, 1);
    // The head's accept started nothing again: the next message rank 1 gets is its stop.
    await s.client.terminateCluster(cluster.id);
    assert.equal((await other.next()).type, "job-stop");
  });

  it("sends a reserved lease's start again when its worker reconnects", async (t) => {
    const s = await simulatedNetwork(db, t, 2);
    const cluster = await deploy(s, 2);
    const head = s.roleOf(cluster, 0);
    const first = await s.nextStart(head);
    // The start is lost with the link: the worker reconnects, and gets it again.
    head.socket.terminate();
    const again = await head.reconnect();
    t.after(() => again.socket.terminate());
    assert.deepEqual(await s.nextStart(again), first);
    again.send(accepted(cluster.id, 0, 29_500));

    // Rank 1 got its start from the head's accept; it drops the link too and is sent it again.
    const other = s.roleOf(cluster, 1);
    const rankStart = await s.nextStart(other);
    assert.equal(rankStart.head?.port, 29_500);
    other.socket.terminate();
    const otherAgain = await other.reconnect();
    t.after(() => otherAgain.socket.terminate());
    assert.deepEqual(await s.nextStart(otherAgain), rankStart);
    otherAgain.send(accepted(cluster.id, 1, null));
    const view = await s.until(cluster.id, (v) => v.status === "running", "ran");
    assert.equal(view.events.filter((e) => e.type === "head-ready").length, 1);
  });

  it("moves a rank its worker fenced while the lease stayed active, without a slash", async (t) => {
    // The coordinator was the one away (a restart longer than the fencing budget): the worker
    // stopped its rank, and its exit arrives on a lease the coordinator still thinks runs.
    const s = await simulatedNetwork(db, t, 3);
    const cluster = await s.client.deployCluster({
      kind: "batch",
      nodes: 1,
      shadow: 1,
      hours: 2,
      gpuModel: "cpu",
      command: ["true"],
    });
    const worker = s.roleOf(cluster, 0);
    await s.nextStart(worker);
    worker.send(accepted(cluster.id, 0, 29_500));
    await s.until(cluster.id, (v) => v.status === "running", "ran");
    const standby = s.byNode(cluster.nodes.find((n) => n.role === "standby")!.nodeId);
    worker.send({
      ...headExit(cluster.id),
      exitCode: null,
      signal: "SIGTERM",
      error: "stopped by self-fencing: no contact with the coordinator for 4100 ms",
      fenced: true,
    });
    const moved = await s.nextStart(standby);
    assert.deepEqual([moved.rank, moved.attempt], [0, 1]);
    const view = await s.client.getCluster(cluster.id);
    assert.equal(view.status, "running");
    assert.ok(view.events.some((e) => e.type === "failover"));
    assert.ok(!view.events.some((e) => e.type === "slashed"), "the node was not at fault");
    assert.equal((await s.costs(cluster.id)).slashCompensation, "0.000000");
  });

  it("remembers the head across a coordinator restart for a rank whose start was lost", async (t) => {
    const s = await simulatedNetwork(db, t, 2);
    const cluster = await deploy(s, 2);
    const head = s.roleOf(cluster, 0);
    await s.nextStart(head);
    head.send(accepted(cluster.id, 0, 29_500));
    const other = s.roleOf(cluster, 1);
    await s.nextStart(other); // lost, as far as the coordinator knows: rank 1 never accepts
    // The head's short run ends while the coordinator is down; rank 1 comes back after a restart.
    head.socket.terminate();
    other.socket.terminate();
    const restarted = await s.net.restart();
    t.after(() => restarted.close());
    const again = await other.reconnect(restarted.url);
    t.after(() => again.socket.terminate());
    const start = await s.nextStart(again);
    assert.deepEqual([start.rank, start.head?.port], [1, 29_500]);
  });

  it("pays a lease up to its worker's last heartbeat, even across a coordinator restart", async (t) => {
    const s = await simulatedNetwork(db, t, 1);
    const cluster = await deploy(s, 1);
    const worker = s.roleOf(cluster, 0);
    await s.nextStart(worker);
    worker.send(accepted(cluster.id, 0, 29_500));
    const running = await s.until(cluster.id, (v) => v.status === "running", "ran");
    const startedAt = Date.parse(running.events.find((e) => e.type === "running")!.at);

    // Heard from at +5 min (flushed as last seen); silent from then on.
    s.clock.advance(5 * MINUTE);
    const { gateway } = s.net.coordinator;
    await gateway.flushLastSeen();
    await s.beat([worker]);
    await gateway.flushLastSeen();
    const lastSeen = startedAt + 5 * MINUTE;

    // Settlement while the node is silent pays no further than its last beat.
    s.clock.advance(4 * MINUTE);
    await s.net.coordinator.ticker.tick();
    const servedBefore = (await s.costs(cluster.id)).served;

    // The coordinator goes down for 10 minutes; the worker never comes back.
    worker.socket.terminate();
    s.clock.advance(10 * MINUTE);
    const restarted = await s.net.restart();
    t.after(() => restarted.close());
    await restarted.coordinator.ticker.tick();
    s.clock.advance(7_000 + RESTART_GRACE_MS);
    await restarted.coordinator.gateway.sweep();
    const consumer = restarted.client(s.consumer.apiKey);
    for (let i = 0; i < 500 && (await consumer.getCluster(cluster.id)).status !== "failed"; i++)
      await new Promise((r) => setTimeout(r, 10));
    const { billed_until, status } = await restarted.coordinator.store.db
      .selectFrom("cluster_nodes")
      .select(["billed_until", "status"])
      .where("cluster_id", "=", cluster.id)
      .executeTakeFirstOrThrow();
    assert.equal(status, "lost");
    assert.equal(Number(billed_until), lastSeen, "paid to the last heartbeat, not the restart");
    const costs = await consumer.clusterCosts(cluster.id);
    assert.equal(costs.served, servedBefore, "nothing more was paid after the last heartbeat");
    assert.notEqual(costs.served, "0.000000");
    // Whether it died or only the coordinator was away cannot be told: no slash.
    assert.equal(costs.slashCompensation, "0.000000");
  });

  it("after a restart, places and promotes only nodes heard from, and blames none that stay away", async (t) => {
    const s = await simulatedNetwork(db, t, 3);
    const cluster = await s.client.deployCluster({
      kind: "batch",
      nodes: 1,
      shadow: 1,
      hours: 2,
      gpuModel: "cpu",
      command: ["true"],
    });
    const rankNode = s.roleOf(cluster, 0);
    const standby = s.roleOf(cluster, null);
    const idle = s.pool.find((w) => w !== rankNode && w !== standby)!;
    await s.nextStart(rankNode);
    rankNode.send(accepted(cluster.id, 0, 29_500));
    await s.until(cluster.id, (v) => v.status === "running", "ran");

    // The coordinator restarts; only the rank's worker is back at once.
    for (const worker of s.pool) worker.socket.terminate();
    const restarted = await s.net.restart();
    t.after(() => restarted.close());
    const { gateway } = restarted.coordinator;
    const back = await rankNode.reconnect(restarted.url);
    t.after(() => back.socket.terminate());
    const consumer = restarted.client(s.consumer.apiKey);
    /** A heartbeat from `worker` at the clock's time, once the coordinator has taken it in. */
    const beat = async (worker: typeof back) => {
      worker.send(heartbeat(s.clock.now()));
      await until(() => gateway.detector.lastHeardMs(worker.nodeId) === s.clock.now(), "a beat");
    };

    // The idle node is `available` in the store, but unheard: no deploy lands on it.
    await assert.rejects(
      consumer.deployCluster({
        kind: "batch",
        nodes: 1,
        hours: 1,
        gpuModel: "cpu",
        command: ["true"],
      }),
      (e: unknown) => (e as { code?: string }).code === "NO_CAPACITY",
    );

    // Past the usual deadline, within the grace: nobody is declared dead; the rank's node beats.
    s.clock.advance(HEARTBEAT_MS * 3 + 1000);
    await beat(back);
    await gateway.sweep();
    assert.equal((await consumer.getCluster(cluster.id)).nodes.filter((n) => n.active).length, 2);

    // The idle worker comes back within the grace: rentable again, never offline.
    const idleBack = await idle.reconnect(restarted.url);
    t.after(() => idleBack.socket.terminate());
    await until(async () => {
      const node = await restarted.client().getNode(idle.nodeId);
      return node.status === "available";
    }, "the idle node available");

    // The rank's node now fails for real; the standby, never heard from since the restart, is not
    // promoted: the rank goes to the idle node that is back. The lost node alone is slashed.
    s.clock.advance(HEARTBEAT_MS * 3 + 1);
    await beat(idleBack);
    await gateway.sweep();
    const start = await s.nextStart(idleBack);
    assert.equal(start.rank, 0);
    let view = await consumer.getCluster(cluster.id);
    const slashed = view.events.filter((e) => e.type === "slashed");
    assert.deepEqual(
      slashed.map((e) => e.detail.nodeId),
      [rankNode.nodeId],
    );

    // The standby never comes back: after the grace its lease ends, without a slash.
    s.clock.advance(RESTART_GRACE_MS);
    await beat(idleBack);
    await gateway.sweep();
    view = await until(async () => {
      const v = await consumer.getCluster(cluster.id);
      return v.nodes.some((n) => n.nodeId === standby.nodeId && !n.active) ? v : undefined;
    }, "the standby's lease ended");
    assert.equal(view.events.filter((e) => e.type === "slashed").length, 1);
    const history = await restarted.client().nodeHistory(standby.nodeId);
    const offline = history.items.find((h) => h.action === "status" && h.to === "offline");
    assert.match(String(offline?.detail.reason), /not heard from since the coordinator restarted/);
  });
});

/** Polls `probe` (truthy ends it) for up to 30 s of wall time. */
async function until<T>(probe: () => T | Promise<T>, what: string): Promise<NonNullable<T>> {
  for (const deadline = Date.now() + 30_000; Date.now() < deadline;) {
    const value = await probe();
    if (value !== undefined && value !== null && value !== false) return value;
    await new Promise((r) => setTimeout(r, 10));
  }
  throw new Error(`never ${what}`);
}
