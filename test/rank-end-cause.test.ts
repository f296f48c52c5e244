// Who is at fault (issue 18, DESIGN.md §8.6): each way a rank ends, driven through simulated
// workers over real WebSockets on both databases, records its one cause in the cluster's events
// and the node's history, and only a supplier's cause slashes or lowers reputation.
import assert from "node:assert/strict";
import { it } from "node:test";
import { RANK_ENDS, type RankEnd } from "../src/core/rank-end-cause.ts";
import type { ClusterView } from "../src/protocol/clusters.ts";
import { forEachDatabase } from "./support/coordinator.ts";
import { MINUTE, simulatedNetwork, type SimulatedNetwork } from "./support/simulated-network.ts";
import type { Worker } from "./support/simulated-network.ts";

/** A one-rank batch cluster with a standby; `accept` false leaves the rank reserved. */
async function deployed(s: SimulatedNetwork, accept = true) {
  const cluster = await s.client.deployCluster({
    kind: "batch",
    nodes: 1,
    shadow: 1,
    hours: 2,
    gpuModel: "cpu",
    command: ["true"],
  });
  const rank0 = s.roleOf(cluster, 0);
  await s.nextStart(rank0);
  if (!accept) return { cluster, rank0 };
  rank0.send({ type: "job-accepted", clusterId: cluster.id, rank: 0, attempt: 0, port: 29_500 });
  await s.until(cluster.id, (v) => v.status === "running", "ran");
  return { cluster, rank0 };
}

function exit(clusterId: string, fields: Record<string, unknown>) {
  return { type: "job-exit", clusterId, rank: 0, attempt: 0, signal: null, ...fields };
}

/** How each end is brought about on a running rank held by `victim`. */
const SCENARIOS: Array<{
  end: RankEnd;
  title: string;
  accept?: boolean;
  act(s: SimulatedNetwork, cluster: ClusterView, victim: Worker): Promise<void> | void;
}> = [
  {
    end: "image-missing",
    title: "a deploy naming an image the node does not hold",
    act(_s, cluster, victim) {
      victim.send(
        exit(cluster.id, {
          exitCode: null,
          error: "image localhost/absent:1 is not on this node (images are never pulled)",
          startFailure: "image-missing",
        }),
      );
    },
  },
  {
    end: "invalid-job",
    title: "a job the runtime refuses",
    act(_s, cluster, victim) {
      victim.send(
        exit(cluster.id, {
          exitCode: null,
          error: "command is empty",
          startFailure: "invalid-job",
        }),
      );
    },
  },
  {
    end: "exit-nonzero",
    title: "a job exiting non-zero",
    act(_s, cluster, victim) {
      victim.send(exit(cluster.id, { exitCode: 3, error: null }));
    },
  },
  {
    end: "finished",
    title: "a job exiting 0",
    act(_s, cluster, victim) {
      victim.send(exit(cluster.id, { exitCode: 0, error: null }));
    },
  },
  {
    end: "cluster-ended",
    title: "the consumer terminating the cluster",
    async act(s, cluster) {
      await s.client.terminateCluster(cluster.id);
    },
  },
  {
    end: "start-failed",
    title: "a node that cannot run what it advertised",
    act(_s, cluster, victim) {
      victim.send(
        exit(cluster.id, {
          exitCode: null,
          error: "bwrap: cannot create the sandbox",
          startFailure: "start-failed",
        }),
      );
    },
  },
  {
    end: "node-offline",
    title: "a node that misses its heartbeats",
    async act(s, _cluster, victim) {
      await s.silence(victim);
    },
  },
  {
    end: "node-revoked",
    title: "a revoked device",
    async act(s, _cluster, victim) {
      const { deviceId } = await s.client.getNode(victim.nodeId);
      await s.net.client(s.net.adminKey).revokeDevice(deviceId, "stolen");
    },
  },
  {
    end: "never-accepted",
    title: "a node that never takes its rank",
    accept: false,
    async act(s) {
      s.clock.advance(11_000); // past the 10 s reservation
      await s.net.coordinator.ticker.tick();
    },
  },
  {
    end: "drained",
    title: "an announced drain",
    act(_s, _cluster, victim) {
      victim.send({ type: "drain", reason: "maintenance" });
    },
  },
  {
    end: "link-lost",
    title: "a worker that fenced its rank while the coordinator still held its lease",
    act(_s, cluster, victim) {
      victim.send(
        exit(cluster.id, {
          exitCode: null,
          signal: "SIGTERM",
          error: "stopped by self-fencing: no contact with the coordinator for 4100 ms",
          fenced: true,
        }),
      );
    },
  },
];

forEachDatabase("who is at fault", (db) => {
  for (const scenario of SCENARIOS) {
    const { cause, slash, reputation } = RANK_ENDS[scenario.end];
    it(`${scenario.end}: ${scenario.title} is the ${cause}'s (slash: ${slash}, reputation: ${reputation})`, async (t) => {
      const s = await simulatedNetwork(db, t, 2);
      const { cluster, rank0 } = await deployed(s, scenario.accept ?? true);
      const before = (await s.client.getNode(rank0.nodeId)).reputation;
      await scenario.act(s, cluster, rank0);

      // The end is recorded with its cause: in the cluster's events (a rank's exit, a failover,
      // a slash) or, for a lease its cluster's end closed, in the node's history.
      const ends = async () => {
        const view = await s.client.getCluster(cluster.id);
        const history = await s.client.nodeHistory(rank0.nodeId);
        const all: Array<Record<string, unknown>> = [
          ...view.events.map((e) => ({ what: e.type, ...e.detail })),
          ...history.items
            .filter((h) => h.action === "lease-ended" && h.detail.clusterId === cluster.id)
            .map((h) => ({ what: h.action, ...h.detail })),
        ];
        const recorded = all.filter((r) => r.end === scenario.end);
        return { view, recorded };
      };
      // A supplier's end is recorded first (the rank's exit), its slash by the failover after it.
      const settled = (f: Awaited<ReturnType<typeof ends>>) =>
        f.recorded.length > 0 && (!slash || f.view.events.some((e) => e.type === "slashed"));
      let found = await ends();
      for (let i = 0; i < 1000 && !settled(found); i++) {
        await new Promise((r) => setTimeout(r, 10));
        found = await ends();
      }
      const { view, recorded } = found;
      assert.ok(recorded.length > 0, `${scenario.end} recorded`);
      for (const r of recorded) assert.equal(r.cause, cause, String(r.what));
      if (cause === "consumer")
        assert.ok(
          !view.events.some((e) => e.type === "failover"),
          "the consumer's cause does not move the rank",
        );

      const slashes = view.events.filter((e) => e.type === "slashed");
      assert.equal(slashes.length, slash ? 1 : 0, "only a supplier's cause slashes");
      if (slash) assert.equal(slashes[0]!.detail.nodeId, rank0.nodeId);
      const after = (await s.client.getNode(rank0.nodeId)).reputation;
      if (reputation) assert.ok(after < before, `reputation drops (${before} → ${after})`);
      else assert.ok(after >= before, `reputation holds (${before} → ${after})`);
      s.clock.advance(MINUTE);
    });
  }

  it("fails a cluster whose image is missing without trying other nodes", async (t) => {
    const s = await simulatedNetwork(db, t, 3);
    const { cluster, rank0 } = await deployed(s);
    rank0.send(
      exit(cluster.id, {
        exitCode: null,
        error: "image localhost/absent:1 is not on this node (images are never pulled)",
        startFailure: "image-missing",
      }),
    );
    const view = await s.until(cluster.id, (v) => v.status === "failed", "failed");
    const exited = view.events.find((e) => e.type === "rank-exited")!.detail;
    assert.match(String(exited.error), /image localhost\/absent:1 is not on this node/);
    assert.equal(view.nodes.filter((n) => n.rank === 0).length, 1, "no other node was tried");
    assert.equal((await s.costs(cluster.id)).slashCompensation, "0.000000");
  });
});
