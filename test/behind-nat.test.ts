// Nodes behind NAT (issue 14 item 2): each worker says in its `auth` the address its host has on
// its link to the coordinator, and the coordinator compares it with the address it sees. Two nodes
// behind NAT cannot reach each other over a cluster overlay (nobody can open a path to either),
// so placement takes at most one into a multi-node cluster, standbys and replacements included,
// and a refusal names that step. Simulated workers over real WebSockets on 127.0.0.1: one that
// says 192.168.77.x is behind NAT, one that says 127.0.0.1 (or nothing, as an older worker) is not.
import assert from "node:assert/strict";
import { it } from "node:test";
import type { NetworkCapability } from "../src/protocol/cluster-network.ts";
import { connectPayload, signPayload } from "../src/protocol/device-signing.ts";
import { CloseCode } from "../src/protocol/worker-messages.ts";
import { forEachDatabase } from "./support/coordinator.ts";
import { openWorkerSocket } from "./support/devices.ts";
import { simulatedNetwork } from "./support/simulated-network.ts";

const CAN: NetworkCapability = { isolation: true, overlay: "wireguard-go", problems: [] };
const NAT_STEP = "behind NAT: at most 1 per cluster";

forEachDatabase("nodes behind NAT", (db) => {
  it("knows which workers are behind NAT and takes at most one into a cluster overlay", async (t) => {
    const s = await simulatedNetwork(
      db,
      t,
      4,
      { jobNetworks: "required" },
      [],
      [CAN, CAN, CAN, CAN],
      ["192.168.77.2", "192.168.77.3", "127.0.0.1", undefined],
    );
    const { gateway } = s.net.coordinator;
    assert.deepEqual(
      s.pool.map((w) => gateway.behindNat(w.nodeId)),
      [true, true, false, false],
    );
    const natted = new Set(s.pool.slice(0, 2).map((w) => w.nodeId));

    assert.equal((await s.client.search({ nodes: 3, gpuModel: "cpu" })).satisfiable, true);
    const four = await s.client.search({ nodes: 4, gpuModel: "cpu" });
    assert.equal(four.satisfiable, false);
    assert.equal(four.matching, 3);
    assert.deepEqual(four.funnel.at(-1), { filter: NAT_STEP, remaining: 3 });
    assert.match(four.explanation, /behind NAT: at most 1 per cluster: 3 \(need 4\)$/);
    // Standbys count: two ranks and two standbys would need both.
    const standbys = await s.client.search({ nodes: 2, shadow: 2, gpuModel: "cpu" });
    assert.equal(standbys.satisfiable, false);
    assert.deepEqual(standbys.funnel.at(-1), { filter: NAT_STEP, remaining: 3 });
    // One node has no overlay: both behind NAT may run one-node clusters.
    assert.equal((await s.client.search({ nodes: 1, gpuModel: "cpu" })).matching, 4);

    const refused = await s.client
      .deployCluster({ kind: "batch", nodes: 4, hours: 1, gpuModel: "cpu", command: ["true"] })
      .then(
        () => undefined,
        (error: unknown) => error as { code?: string; message?: string },
      );
    assert.equal(refused?.code, "NO_CAPACITY");
    assert.match(refused?.message ?? "", /behind NAT: at most 1 per cluster: 3/);

    const cluster = await s.client.deployCluster({
      kind: "batch",
      nodes: 3,
      hours: 1,
      gpuModel: "cpu",
      command: ["true"],
    });
    const placed = cluster.nodes.map((n) => n.nodeId);
    assert.equal(placed.filter((id) => natted.has(id)).length, 1);
  });

  it("never moves a rank to a second node behind NAT", async (t) => {
    const s = await simulatedNetwork(
      db,
      t,
      3,
      { jobNetworks: "required" },
      [],
      [CAN, CAN, CAN],
      ["192.168.77.2", "192.168.77.3", "127.0.0.1"],
    );
    const cluster = await s.client.deployCluster({
      kind: "batch",
      nodes: 2,
      hours: 1,
      gpuModel: "cpu",
      command: ["sleep", "60"],
    });
    const open = s.pool[2]!;
    const members = cluster.nodes.map((n) => n.nodeId);
    assert.ok(members.includes(open.nodeId));
    const spare = s.pool.find((w) => !members.includes(w.nodeId))!;
    const head = s.roleOf(cluster, 0);
    await s.nextStart(head);
    head.send({
      type: "job-accepted",
      clusterId: cluster.id,
      rank: 0,
      attempt: 0,
      port: 29_500,
      overlay: true,
    });
    const other = s.roleOf(cluster, 1);
    await s.nextStart(other);
    other.send({ type: "job-accepted", clusterId: cluster.id, rank: 1, attempt: 0, port: null });
    await s.until(cluster.id, (v) => v.status === "running", "ran");

    // The node with an endpoint is lost: the only free node is behind NAT, as the survivor is.
    await s.silence(open);
    const ended = await s.until(cluster.id, (v) => v.status === "failed", "failed");
    assert.ok(
      ended.nodes.every((n) => n.nodeId !== spare.nodeId),
      "the spare behind NAT never joined the overlay of a node behind NAT",
    );
  });

  it("refuses an auth whose address is not an IPv4 address", async (t) => {
    const s = await simulatedNetwork(db, t, 1, {}, [], [CAN], ["127.0.0.1"]);
    const worker = s.pool[0]!;
    const { device_id: deviceId } = await s.net.coordinator.store.db
      .selectFrom("nodes")
      .select("device_id")
      .where("id", "=", worker.nodeId)
      .executeTakeFirstOrThrow();
    const ws = await openWorkerSocket(s.net.url);
    const signature = signPayload(worker.device.privateKey, connectPayload(deviceId, ws.nonce));
    ws.send({ type: "auth", deviceId, signature, localAddress: "192.168.77.300" });
    assert.equal((await ws.closed()).code, CloseCode.badMessage);
    assert.equal(s.net.coordinator.gateway.behindNat(worker.nodeId), false, "its session stands");
    const again = await worker.reconnect();
    assert.equal(s.net.coordinator.gateway.behindNat(again.nodeId), false);
    again.socket.terminate();
  });
});
