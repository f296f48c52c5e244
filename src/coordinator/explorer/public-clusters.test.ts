import assert from "node:assert/strict";
import { it } from "node:test";
import {
  type LiveClusterEvent,
  PublicCluster,
  PublicClusterList,
  type PublicClustersQuery,
} from "../../protocol/network.ts";
import { assertError, forEachDatabase, httpRequest } from "../../../test/support/coordinator.ts";
import {
  MINUTE,
  simulatedNetwork,
  type SimulatedNetwork,
} from "../../../test/support/simulated-network.ts";

import { ClusterFeed } from "./cluster-feed.ts";

/** What anyone reads, with no key: the list (query as given) and one cluster. */
function publicApi(url: string) {
  return {
    async networkClusters(query: PublicClustersQuery = {}) {
      const params = new URLSearchParams(Object.entries(query).map(([k, v]) => [k, String(v)]));
      const response = await httpRequest(url, "GET", `/v1/network/clusters?${params.toString()}`);
      assert.equal(response.status, 200, response.text);
      return PublicClusterList.parse(response.json);
    },
    async networkCluster(id: string) {
      const response = await httpRequest(url, "GET", `/v1/network/clusters/${id}`);
      assert.equal(response.status, 200, response.text);
      return PublicCluster.parse(response.json);
    },
  };
}

/** Deploys a CPU batch cluster and brings every rank up (head first). */
async function running(s: SimulatedNetwork, nodes: number, shadow = 0) {
  const cluster = await s.client.deployCluster({
    kind: "batch",
    nodes,
    shadow,
    hours: 2,
    gpuModel: "cpu",
    command: ["secret-command", "--token=hunter2"],
    env: { SECRET: "hunter2" },
  });
  for (let rank = 0; rank < nodes; rank++) {
    const worker = s.roleOf(cluster, rank);
    await s.nextStart(worker);
    worker.send({
      type: "job-accepted",
      clusterId: cluster.id,
      rank,
      attempt: 0,
      port: rank === 0 ? 29_500 : null,
    });
  }
  return s.until(cluster.id, (v) => v.status === "running", "ran");
}

forEachDatabase("public clusters", (db) => {
  it("feeds committed public cluster events to the live stream, anonymized, each once", async (t) => {
    const s = await simulatedNetwork(db, t, 2);
    const seen: LiveClusterEvent[] = [];
    const errors: unknown[] = [];
    const feed = new ClusterFeed(
      s.net.coordinator.store.db,
      (e) => seen.push(e),
      () => true,
      (e) => errors.push(e),
      { pollMs: 3_600_000, overlap: 1000 },
    );
    await s.client.deployCluster({
      kind: "batch",
      nodes: 1,
      hours: 1,
      gpuModel: "cpu",
      command: ["x"],
    });
    await feed.start();
    t.after(() => feed.stop());
    await feed.poll();
    assert.equal(seen.length, 0, "events before the start are history, not news");
    const cluster = await running(s, 1);
    await feed.poll();
    await feed.poll();
    assert.deepEqual(
      seen.map((e) => [e.clusterId, e.type, e.status]),
      [
        [cluster.id, "reserved", "running"],
        [cluster.id, "running", "running"],
      ],
    );
    assert.deepEqual(seen[0]!.detail, {}, "no node list or TTL in public");
    await s.client.terminateCluster(cluster.id);
    await feed.poll();
    assert.deepEqual(
      seen.slice(2).map((e) => [e.type, e.status]),
      [["terminated", "terminated"]],
    );
    assert.deepEqual(errors, []);
  });

  it("shows clusters to anyone without owner, command or reasons; failovers and takeovers included", async (t) => {
    const s = await simulatedNetwork(db, t, 4);
    const anonymous = publicApi(s.net.url);
    assert.deepEqual(await anonymous.networkClusters(), {
      items: [],
      nextCursor: null,
      active: {},
    });

    const cluster = await running(s, 2, 1);
    const victim = s.roleOf(cluster, 1);
    const standby = s.byNode(cluster.nodes.find((n) => n.role === "standby")!.nodeId);
    s.clock.advance(5 * MINUTE);
    await s.silence(victim);
    await s.nextStart(standby);
    standby.send({ type: "job-accepted", clusterId: cluster.id, rank: 1, attempt: 1, port: null });
    await s.tookOver(cluster.id);

    const list = await anonymous.networkClusters();
    assert.equal(list.items.length, 1);
    assert.deepEqual(list.active, { running: 1 });
    const seen = list.items[0]!;
    assert.deepEqual(seen, await anonymous.networkCluster(cluster.id));
    assert.equal(seen.kind, "batch");
    assert.equal(seen.status, "running");
    assert.equal(seen.nodes, 2, "the two ranks it holds now; the standby took a rank");
    assert.equal(seen.gpuModel, "cpu");
    assert.deepEqual(seen.regions, ["eu-west"]);
    assert.ok(seen.startedAt !== null && seen.endedAt === null);
    const failover = seen.events.find((e) => e.type === "failover");
    assert.deepEqual(failover?.detail, {
      rank: 1,
      fromNodeId: victim.nodeId,
      toNodeId: standby.nodeId,
      via: "standby",
    });
    const takeover = seen.events.find((e) => e.type === "takeover")!.detail;
    assert.equal(takeover.nodeId, standby.nodeId);
    assert.deepEqual(
      seen.events.map((e) => e.type).filter((type) => ["slashed", "head-ready"].includes(type)),
      [],
      "no events outside the public set",
    );
    const raw = JSON.stringify((await httpRequest(s.net.url, "GET", "/v1/network/clusters")).json);
    for (const secret of ["hunter2", "secret-command", s.consumer.accountId, "reason"])
      assert.ok(!raw.includes(secret), `${secret} stays private`);

    const ended = await s.client.terminateCluster(cluster.id);
    const after = await anonymous.networkCluster(cluster.id);
    assert.equal(after.status, ended.status);
    assert.ok(after.endedAt !== null);
    assert.equal(after.nodes, 2, "an ended cluster shows what each rank ran on last");
    assert.deepEqual((await anonymous.networkClusters()).active, {});
  });

  it("pages newest first, filters by status, and refuses bad input with 4xx", async (t) => {
    const s = await simulatedNetwork(db, t, 3);
    const anonymous = publicApi(s.net.url);
    const ids: string[] = [];
    for (let i = 0; i < 3; i++) {
      s.clock.advance(1000); // ids sort by their millisecond, then at random
      const cluster = await running(s, 1);
      ids.push(cluster.id);
      if (i < 2) await s.client.terminateCluster(cluster.id);
    }
    const paged: string[] = [];
    let cursor: string | undefined;
    do {
      const page = await anonymous.networkClusters({ limit: 2, ...(cursor ? { cursor } : {}) });
      paged.push(...page.items.map((c) => c.id));
      cursor = page.nextCursor ?? undefined;
    } while (cursor !== undefined);
    assert.deepEqual(paged, [...ids].reverse());
    assert.deepEqual(
      (await anonymous.networkClusters({ status: "running" })).items.map((c) => c.id),
      [ids[2]],
    );
    assertError(
      await httpRequest(s.net.url, "GET", "/v1/network/clusters?cursor=bm9kZV94"),
      400,
      "VALIDATION_FAILED",
    );
    assertError(
      await httpRequest(s.net.url, "GET", "/v1/network/clusters?status=sleeping"),
      400,
      "VALIDATION_FAILED",
    );
    assertError(
      await httpRequest(s.net.url, "GET", "/v1/network/clusters?limit=1000"),
      400,
      "VALIDATION_FAILED",
    );
    assertError(
      await httpRequest(s.net.url, "GET", `/v1/network/clusters/clu_${"0".repeat(26)}`),
      404,
      "NOT_FOUND",
    );
    assertError(
      await httpRequest(s.net.url, "GET", "/v1/network/clusters/node_x"),
      400,
      "VALIDATION_FAILED",
    );
  });
});
