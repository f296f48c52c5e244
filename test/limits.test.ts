// Per-rank limits through the coordinator (issue 18 item 4), with simulated workers over real
// WebSockets: placement keeps a deploy's ask within the nodes' offers (a funnel step says how many
// each limit eliminated), the ask reaches the worker in job-start and shows in the cluster view,
// and a rank that ends by exceeding a limit is the consumer's: recorded, no failover, no slash.
import assert from "node:assert/strict";
import { it } from "node:test";
import { assertError, forEachDatabase, httpRequest } from "./support/coordinator.ts";
import { simulatedNetwork, type SimulatedNetwork } from "./support/simulated-network.ts";
import type { DeployRequest } from "../src/protocol/clusters.ts";

const SMALL = { memoryMiB: 2048, cpuCores: 2, pids: 1024, diskMiB: 10_240 };
const LARGE = { memoryMiB: 16_384, cpuCores: 8, pids: 4096, diskMiB: 102_400 };

/** A one-node CPU batch deploy of `true`, with `extra` on top. */
const deploy = (s: SimulatedNetwork, extra: Partial<DeployRequest> = {}) =>
  s.client.deployCluster({
    kind: "batch",
    nodes: 1,
    hours: 1,
    gpuModel: "cpu",
    command: ["true"],
    ...extra,
  });

forEachDatabase("rank limits", (db) => {
  it("refuses a deploy asking more than any node offers, naming the limit in the funnel, and charges nothing", async (t) => {
    const s = await simulatedNetwork(db, t, 3, {}, [SMALL, LARGE, undefined]);
    const response = await httpRequest(s.net.url, "POST", "/v1/clusters", {
      apiKey: s.consumer.apiKey,
      body: {
        kind: "batch",
        nodes: 1,
        hours: 1,
        gpuModel: "cpu",
        command: ["true"],
        limits: { memoryMiB: 4096, diskMiB: 204_800 },
      },
    });
    const error = assertError(response, 409, "NO_CAPACITY");
    assert.match(error.message, /memory ≥ 4096 MiB: 1 → disk ≥ 204800 MiB: 0/);
    const search = await s.client.search({
      nodes: 1,
      gpuModel: "cpu",
      limits: { memoryMiB: 4096, diskMiB: 204_800 },
    });
    assert.equal(search.satisfiable, false);
    assert.deepEqual(
      search.funnel.map((f) => [f.filter, f.remaining]),
      [
        ["available", 3],
        ["cpu-only", 3],
        ["memory ≥ 4096 MiB", 1],
        ["disk ≥ 204800 MiB", 0],
      ],
      "a node reporting no offer fails any ask",
    );
    const wallet = await s.client.wallet();
    assert.equal(wallet.balances.find((b) => b.currency === "USDC")?.wallet, "10.000000");
    const invalid = await httpRequest(s.net.url, "POST", "/v1/clusters", {
      apiKey: s.consumer.apiKey,
      body: { kind: "batch", nodes: 1, hours: 1, command: ["true"], limits: { memoryMiB: -1 } },
    });
    assertError(invalid, 400, "VALIDATION_FAILED");
  });

  it("places on a node offering the ask, sends the ask in job-start and shows the limits", async (t) => {
    const s = await simulatedNetwork(db, t, 2, {}, [SMALL, LARGE]);
    const cluster = await deploy(s, { limits: { memoryMiB: 4096, cpuCores: 1.5 } });
    const head = s.roleOf(cluster, 0);
    assert.equal(head, s.pool[1], "only the large node offers 4096 MiB");
    const start = await s.nextStart(head);
    assert.deepEqual(start.limits, { memoryMiB: 4096, cpuCores: 1.5 });
    const view = await s.client.getCluster(cluster.id);
    assert.deepEqual(view.limits, { memoryMiB: 4096, cpuCores: 1.5 });
    assert.deepEqual(view.nodes[0]?.limits, { ...LARGE, memoryMiB: 4096, cpuCores: 1.5 });
  });

  it("with no ask, a rank runs with its node's offer and job-start carries no limits", async (t) => {
    const s = await simulatedNetwork(db, t, 1, {}, [SMALL]);
    const cluster = await deploy(s);
    const start = await s.nextStart(s.pool[0]!);
    assert.equal(start.limits, undefined);
    const view = await s.client.getCluster(cluster.id);
    assert.deepEqual(view.limits, {});
    assert.deepEqual(view.nodes[0]?.limits, SMALL);
  });

  it("records a rank that exceeded its memory limit as the consumer's: no failover, no slash", async (t) => {
    const s = await simulatedNetwork(db, t, 2, {}, [LARGE, LARGE]);
    const cluster = await deploy(s, { shadow: 1, hours: 2, limits: { memoryMiB: 1024 } });
    const head = s.roleOf(cluster, 0);
    await s.nextStart(head);
    head.send({ type: "job-accepted", clusterId: cluster.id, rank: 0, attempt: 0, port: 29_500 });
    await s.until(cluster.id, (v) => v.status === "running", "ran");
    // What the worker's supervisor sends for an OOM kill: no exit code, the signal, the reason.
    head.send({
      type: "job-exit",
      clusterId: cluster.id,
      rank: 0,
      attempt: 0,
      exitCode: null,
      signal: "SIGKILL",
      error: "exceeded its memory limit (1024 MiB)",
      limitExceeded: "memory",
    });
    const view = await s.until(cluster.id, (v) => v.status === "failed", "failed");
    const exited = view.events.find((e) => e.type === "rank-exited");
    assert.equal(exited?.detail.limitExceeded, "memory");
    assert.equal(exited?.detail.error, "exceeded its memory limit (1024 MiB)");
    assert.ok(!view.events.some((e) => e.type === "failover" || e.type === "slashed"));
    assert.equal(view.nodes.find((n) => n.rank === 0)?.status, "failed");
    assert.equal((await s.costs(cluster.id)).slashCompensation, "0.000000");
  });
});
