// Nodes behind NAT across simulated hosts (test/support/hosts.ts): one host with a public address
// and two behind their own NAT, a real `tandem worker start` on each, a real coordinator on the
// wan. The coordinator knows which workers are behind NAT from their auth; a 2-node cluster with
// one of them runs a rank-to-rank exchange over its WireGuard overlay (the node behind NAT opens
// the path), and a 2-node deploy never pairs the two behind NAT: they could never reach each other.
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import type { TandemClient } from "../src/client/client.ts";
import type { Coordinator } from "../src/coordinator/main.ts";
import type { ClusterView } from "../src/protocol/clusters.ts";
import { startHostNetwork, type HostNetwork } from "./support/host-network.ts";
import type { Hosts, SimulatedHost } from "./support/hosts.ts";
import { eventually } from "./support/processes.ts";

const FINAL = ["completed", "failed", "terminated", "expired"];
const HOSTS = 3;
const NAT_HOSTS = 2;

/** Rank 0 answers on the overlay; every other rank keeps trying it (the path may take a handshake). */
const EXCHANGE = `
import os, socket, time
rank = int(os.environ["RANK"])
head = os.environ["MASTER_ADDR"]
if rank == 0:
    server = socket.socket()
    server.bind(("0.0.0.0", 7001))
    server.listen()
    server.settimeout(90)
    peer, (address, _) = server.accept()
    line = peer.makefile().readline().strip()
    peer.sendall(f"pong to {line}\\n".encode())
    peer.close()
    print(f"head got '{line}' from {address}", flush=True)
else:
    deadline = time.time() + 90
    while True:
        try:
            with socket.create_connection((head, 7001), timeout=3) as s:
                s.sendall(f"ping from rank {rank}\\n".encode())
                print(f"rank {rank} got '{s.makefile().readline().strip()}'", flush=True)
                break
        except OSError:
            if time.time() > deadline:
                raise
            time.sleep(0.25)
`;

describe(
  "nodes behind NAT across hosts",
  { skip: process.getuid?.() !== 0 && "needs root" },
  () => {
    let net: HostNetwork;
    let hosts: Hosts;
    let coordinator: Coordinator;
    let consumer: TandemClient;

    before(async () => {
      net = await startHostNetwork({
        hosts: HOSTS,
        natHosts: NAT_HOSTS,
        // The public host alone in its region, so a test can take it on purpose.
        regionOf: (host) => (host.behindNat ? "eu-north" : "eu-west"),
      });
      ({ hosts, coordinator } = net);
      consumer = await net.consumer();
    });

    after(() => net?.close());

    /** The simulated host whose worker serves `nodeId` (known by the address it is seen at). */
    function hostOf(nodeId: string): SimulatedHost {
      const seen = coordinator.gateway.addressOf(nodeId);
      const host = hosts.hosts.find((h) => h.publicAddress === seen);
      assert.ok(host !== undefined, `no host at ${seen}`);
      return host;
    }

    async function ended(cluster: ClusterView): Promise<ClusterView> {
      return eventually(
        async () => {
          const view = await consumer.getCluster(cluster.id);
          return FINAL.includes(view.status) ? view : undefined;
        },
        `cluster ${cluster.id} to end`,
        300_000,
      );
    }

    it("knows which workers are behind NAT", async () => {
      const nodes = (await consumer.search({ nodes: 1, gpuModel: "cpu" })).matching;
      assert.equal(nodes, HOSTS);
      const natted = await coordinator.store.db.selectFrom("nodes").select("id").execute();
      for (const { id } of natted)
        assert.equal(coordinator.gateway.behindNat(id), hostOf(id).behindNat, id);
    });

    it("runs a rank-to-rank exchange over the overlay of a cluster with one node behind NAT", async () => {
      const cluster = await consumer.deployCluster({
        kind: "batch",
        nodes: 2,
        hours: 1,
        gpuModel: "cpu",
        command: ["/usr/bin/python3", "-c", EXCHANGE],
      });
      const placed = cluster.nodes.map((n) => hostOf(n.nodeId));
      assert.deepEqual(placed.map((h) => h.behindNat).sort(), [false, true]);
      const done = await ended(cluster);
      const logs = (await consumer.clusterLogs(cluster.id)).items
        .map((l) => `[${l.rank}] ${l.text}`)
        .join("\n");
      assert.equal(done.status, "completed", `${JSON.stringify(done.events)}\n${logs}`);
      assert.match(logs, /\[0\] head got 'ping from rank 1' from 10\.77\.0\.2/);
      assert.match(logs, /\[1\] rank 1 got 'pong to ping from rank 1'/);
      const joined = done.events
        .filter((e) => e.type === "overlay-joined")
        .map((e) => e.detail as { nodeId: string; behindNat: boolean });
      assert.equal(joined.length, 2);
      for (const { nodeId, behindNat } of joined) assert.equal(behindNat, hostOf(nodeId).behindNat);
    });

    it("never pairs the two nodes behind NAT", async () => {
      // The public host is taken: only the two behind NAT are free, and they are not a cluster.
      const holder = await consumer.deployCluster({
        kind: "batch",
        nodes: 1,
        hours: 1,
        gpuModel: "cpu",
        regions: ["eu-west"],
        command: ["sleep", "600"],
      });
      try {
        assert.equal(
          hostOf(holder.nodes[0]!.nodeId).behindNat,
          false,
          "the only node in eu-west is public",
        );
        const search = await consumer.search({ nodes: 2, gpuModel: "cpu" });
        assert.equal(search.satisfiable, false);
        assert.deepEqual(search.funnel.at(-1), {
          filter: "behind NAT: at most 1 per cluster",
          remaining: 1,
        });
        await assert.rejects(
          consumer.deployCluster({
            kind: "batch",
            nodes: 2,
            hours: 1,
            gpuModel: "cpu",
            command: ["true"],
          }),
          (error: { code?: string; message?: string }) =>
            error.code === "NO_CAPACITY" &&
            /behind NAT: at most 1 per cluster: 1/.test(error.message ?? ""),
        );
      } finally {
        await consumer.terminateCluster(holder.id);
      }
    });
  },
);
