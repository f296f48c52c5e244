// The coordinator's side of job networks (src/coordinator/scheduler/cluster-network.ts), with
// simulated workers over real WebSockets: placement asks for nodes that can build them, every
// job-start says what the rank's network is, the head's address is its overlay address, and the
// overlay's public keys are exchanged (and replaced when a rank moves) until the cluster ends.
import assert from "node:assert/strict";
import { it } from "node:test";
import type { NetworkCapability } from "../src/protocol/cluster-network.ts";
import { forEachDatabase } from "./support/coordinator.ts";
import {
  simulatedNetwork,
  type SimulatedNetwork,
  type Worker,
} from "./support/simulated-network.ts";

const CAN: NetworkCapability = { isolation: true, overlay: "wireguard-go", problems: [] };
const NO_OVERLAY: NetworkCapability = {
  isolation: true,
  overlay: null,
  problems: ["wireguard-go is not installed"],
};
/** Base64 of 32 bytes, as `wg pubkey` prints: a distinct key per letter. */
const key = (letter: string) => `${letter.repeat(42)}A=`;

function networkOf(clusterId: string, rank: number, attempt: number, publicKey: string) {
  return {
    type: "job-network",
    clusterId,
    rank,
    attempt,
    publicKey,
    listenPort: 51_820 + rank,
    localAddress: "127.0.0.1",
  };
}

/** The worker's next message of `type`, skipping others. */
async function nextOf(worker: Pick<Worker, "next">, type: string) {
  for (;;) {
    const message = await worker.next();
    if (message.type === type) return message;
  }
}

async function deploy(
  s: SimulatedNetwork,
  nodes: number,
  extra: { internet?: boolean; kind?: "torch" | "batch" } = {},
) {
  return s.client.deployCluster({
    kind: "torch",
    nodes,
    hours: 1,
    gpuModel: "cpu",
    command: ["true"],
    ...extra,
  });
}

forEachDatabase("job networks", (db) => {
  it("places only nodes that build job networks when required, and says which filter refused", async (t) => {
    const s = await simulatedNetwork(
      db,
      t,
      4,
      { jobNetworks: "required" },
      [],
      [CAN, NO_OVERLAY, undefined, CAN],
    );
    const two = await s.client.search({ nodes: 2, gpuModel: "cpu" });
    assert.equal(two.satisfiable, true);
    const three = await s.client.search({ nodes: 3, gpuModel: "cpu" });
    assert.equal(three.satisfiable, false);
    assert.deepEqual(three.funnel.slice(-2), [
      { filter: "isolated network", remaining: 3 },
      { filter: "cluster overlay", remaining: 2 },
    ]);
    // One node needs no overlay: the one that isolates without WireGuard counts then.
    assert.equal((await s.client.search({ nodes: 1, gpuModel: "cpu" })).matching, 3);
  });

  it("with networks optional, a deploy without internet still needs nodes that isolate", async (t) => {
    const s = await simulatedNetwork(db, t, 2, {}, [], [undefined, CAN]);
    assert.equal((await s.client.search({ nodes: 2, gpuModel: "cpu" })).satisfiable, true);
    const refused = await s.client.search({ nodes: 2, gpuModel: "cpu", internet: false });
    assert.equal(refused.satisfiable, false);
    assert.match(refused.explanation, /isolated network: 1/);
    const cluster = await deploy(s, 1, { internet: false });
    assert.equal(s.roleOf(cluster, 0), s.pool[1]);
    const start = await s.nextStart(s.pool[1]!);
    assert.deepEqual(start.network, { internet: false, overlay: false });
  });

  it("points the ranks at the head's overlay address and exchanges the overlay's keys", async (t) => {
    const s = await simulatedNetwork(db, t, 3, { jobNetworks: "required" }, [], [CAN, CAN, CAN]);
    const cluster = await deploy(s, 2, { internet: false });
    const head = s.roleOf(cluster, 0);
    const other = s.roleOf(cluster, 1);
    const headStart = await s.nextStart(head);
    assert.deepEqual(headStart.network, { internet: false, overlay: true });
    head.send({
      type: "job-rendezvous",
      clusterId: cluster.id,
      rank: 0,
      attempt: 0,
      port: 29_500,
      overlay: true,
    });
    const start = await s.nextStart(other);
    assert.deepEqual(start.head, { address: "10.77.0.1", port: 29_500 });

    head.send(networkOf(cluster.id, 0, 0, key("A")));
    const alone = await nextOf(head, "job-peers");
    assert.deepEqual(alone, {
      type: "job-peers",
      clusterId: cluster.id,
      rank: 0,
      attempt: 0,
      peers: [],
    });
    // Rank 1 says it sees itself at another address than the coordinator sees: behind NAT.
    other.send({ ...networkOf(cluster.id, 1, 0, key("B")), localAddress: "192.168.77.2" });
    const toHead = await nextOf(head, "job-peers");
    const toOther = await nextOf(other, "job-peers");
    assert.deepEqual(toHead.type === "job-peers" && toHead.peers, [
      { rank: 1, publicKey: key("B"), overlayAddress: "10.77.0.2", endpoint: null },
    ]);
    assert.deepEqual(toOther.type === "job-peers" && toOther.peers, [
      {
        rank: 0,
        publicKey: key("A"),
        overlayAddress: "10.77.0.1",
        endpoint: { address: "127.0.0.1", port: 51_820 },
      },
    ]);
    const view = await s.client.getCluster(cluster.id);
    const joined = view.events.filter((e) => e.type === "overlay-joined");
    assert.deepEqual(
      joined.map((e) => (e.detail as { behindNat: boolean }).behindNat),
      [false, true],
    );

    // A node that holds no lease of this cluster is not heard.
    const stranger = s.pool.find((w) => w !== head && w !== other)!;
    stranger.send(networkOf(cluster.id, 1, 0, key("C")));
    await s.client.terminateCluster(cluster.id);
    const rows = await s.net.coordinator.store.db.selectFrom("rank_networks").selectAll().execute();
    assert.deepEqual(rows, [], "the overlay's keys are forgotten with the cluster");
    assert.equal((await nextOf(head, "job-stop")).type, "job-stop");
  });

  it("sends new lists when a rank moves to another node with a new key", async (t) => {
    const s = await simulatedNetwork(db, t, 3, { jobNetworks: "required" }, [], [CAN, CAN, CAN]);
    // A batch cluster moves only the lost rank (a torch one restarts them all).
    const cluster = await deploy(s, 2, { kind: "batch" });
    const head = s.roleOf(cluster, 0);
    const other = s.roleOf(cluster, 1);
    await s.nextStart(head);
    head.send({
      type: "job-accepted",
      clusterId: cluster.id,
      rank: 0,
      attempt: 0,
      port: 29_500,
      overlay: true,
    });
    await s.nextStart(other);
    other.send({ type: "job-accepted", clusterId: cluster.id, rank: 1, attempt: 0, port: null });
    await s.until(cluster.id, (v) => v.status === "running", "ran");
    head.send(networkOf(cluster.id, 0, 0, key("A")));
    other.send(networkOf(cluster.id, 1, 0, key("B")));
    await nextOf(head, "job-peers");
    await nextOf(head, "job-peers");

    await s.silence(other);
    const fresh = s.pool.find((w) => w !== head && w !== other)!;
    const moved = await s.nextStart(fresh);
    assert.equal(moved.rank, 1);
    assert.ok(moved.attempt > 0);
    fresh.send(networkOf(cluster.id, 1, moved.attempt, key("D")));
    const list = await nextOf(head, "job-peers");
    assert.deepEqual(
      list.type === "job-peers" && list.peers.map((p) => p.publicKey),
      [key("D")],
      "the moved rank's new key replaces the old one",
    );
    // A late report from the rank's old attempt changes nothing.
    other.send(networkOf(cluster.id, 1, 0, key("B")));
    const rows = await s.net.coordinator.store.db
      .selectFrom("rank_networks")
      .select(["rank", "public_key"])
      .orderBy("rank")
      .execute();
    assert.deepEqual(rows, [
      { rank: 0, public_key: key("A") },
      { rank: 1, public_key: key("D") },
    ]);
  });
});
