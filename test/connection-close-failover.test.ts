// A closed worker connection as a failure signal (issue 20 item 2): a worker whose connection
// closes without a goodbye (its process died) is declared offline at its fencing bound — fence
// budget plus ¾ interval after its last beat, when its own fencing has surely ended its jobs — and
// not after the missed heartbeats; one that connects again before then changes nothing.
// Manual clock, simulated workers over real WebSockets, heartbeats every 2 s (fence after 4 s,
// bound 5.5 s, silence 6 s).
import assert from "node:assert/strict";
import { it } from "node:test";
import { forEachDatabase } from "./support/coordinator.ts";
import { simulatedNetwork, type SimulatedNetwork } from "./support/simulated-network.ts";

const FENCED_BOUND_MS = 5500;

async function standbyCluster(s: SimulatedNetwork) {
  const cluster = await s.client.deployCluster({
    kind: "batch",
    nodes: 1,
    shadow: 1,
    hours: 1,
    gpuModel: "cpu",
    command: ["true"],
  });
  const head = s.roleOf(cluster, 0);
  const start = await s.nextStart(head);
  head.send({ type: "job-accepted", clusterId: cluster.id, rank: 0, attempt: 0, port: 29_500 });
  assert.equal(start.rank, 0);
  const view = await s.until(cluster.id, (v) => v.status === "running", "ran");
  const standby = s.byNode(view.nodes.find((n) => n.role === "standby")!.nodeId);
  return { cluster: view, head, standby };
}

/** Closes the worker's connection as its dying process's kernel would, and waits for the gateway to see it. */
async function kill(s: SimulatedNetwork, socket: { terminate(): void }): Promise<void> {
  const before = s.net.coordinator.gateway.connectedWorkers;
  socket.terminate();
  for (let i = 0; i < 1000 && s.net.coordinator.gateway.connectedWorkers === before; i++)
    await new Promise((r) => setTimeout(r, 5));
  assert.equal(s.net.coordinator.gateway.connectedWorkers, before - 1);
}

forEachDatabase("connection-close failover", (db) => {
  it("declares a worker whose connection closed offline at its fencing bound, not after 3 missed beats", async (t) => {
    const s = await simulatedNetwork(db, t, 2);
    const { cluster, head, standby } = await standbyCluster(s);
    assert.equal(s.net.coordinator.gateway.detector.fencedBoundMs, FENCED_BOUND_MS);
    await s.beat(s.pool);
    s.clock.advance(300);
    await kill(s, head.socket);

    s.clock.advance(FENCED_BOUND_MS - 300 - 1);
    await s.beat([standby]);
    await s.net.coordinator.gateway.sweep();
    assert.equal(
      (await s.client.getNode(head.nodeId)).status,
      "leased",
      "its worker may not have fenced its job yet",
    );

    s.clock.advance(1);
    await s.net.coordinator.gateway.sweep();
    const takeover = await s.nextStart(standby);
    assert.deepEqual([takeover.rank, takeover.attempt], [0, 1]);
    standby.send({
      type: "job-accepted",
      clusterId: cluster.id,
      rank: 0,
      attempt: 1,
      port: 29_500,
    });
    const view = await s.tookOver(cluster.id);
    assert.equal(view.status, "running");
    assert.equal((await s.client.getNode(head.nodeId)).status, "offline");
    const history = await s.client.nodeHistory(head.nodeId);
    const offline = history.items.find((h) => h.action === "status" && h.to === "offline");
    assert.equal(offline?.detail.reason, "connection closed and not reopened");
  });

  it("changes nothing when the worker connects again within the grace", async (t) => {
    const s = await simulatedNetwork(db, t, 2);
    const { cluster, head, standby } = await standbyCluster(s);
    await s.beat(s.pool);
    await kill(s, head.socket);
    s.clock.advance(1000);
    const back = await head.reconnect();
    t.after(() => back.socket.terminate());

    s.clock.advance(FENCED_BOUND_MS);
    await s.beat([standby]);
    await s.net.coordinator.gateway.sweep();
    const view = await s.client.getCluster(cluster.id);
    assert.equal(view.status, "running");
    assert.equal(
      view.events.some((e) => e.type === "failover"),
      false,
      "no failover: the node came back before its bound",
    );
    assert.equal((await s.client.getNode(head.nodeId)).status, "leased");
    const history = await s.client.nodeHistory(head.nodeId);
    assert.equal(
      history.items.some((h) => h.action === "status" && h.to === "offline"),
      false,
      "no offline interval",
    );
  });
});
