// `tandem worker drain` end to end: a real coordinator and 3 real workers as separate processes.
// A drained worker hands its rank to the cluster's standby with no slash and stops; restarted on
// its home, it is rentable again. A rank nothing can take finishes in place: the drain waits for
// its cluster to end.
import assert from "node:assert/strict";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { TandemClient } from "../src/client/client.ts";
import type { ClusterView } from "../src/protocol/clusters.ts";
import {
  eventually,
  spawnTandem,
  type TandemProcess,
  SMALL_PROOF_FLAGS,
} from "./support/processes.ts";
import { enrollmentEnv } from "./support/workers.ts";

const WORKERS = 3;
const FINAL = ["completed", "failed", "terminated", "expired"];

describe("tandem worker drain against the real coordinator", { timeout: 600_000 }, () => {
  const processes: TandemProcess[] = [];
  let home: string;
  let url: string;
  let supplierKey: string;
  let consumer: TandemClient;
  let anonymous: TandemClient;
  /** Worker processes by node id, each restartable on its home. */
  const workers = new Map<string, { process: TandemProcess; home: string }>();

  /** Starts a worker on its home; resolves with the node it serves once it has registered. */
  async function startWorker(workerHome: string) {
    const process = spawnTandem(
      [
        "worker",
        "start",
        "--region",
        "eu-west",
        "--zone",
        "eu-west-a",
        "--home",
        workerHome,
        "--json",
      ],
      await enrollmentEnv(url, supplierKey),
    );
    processes.push(process);
    const started = JSON.parse(await process.line(/^\{/, 90_000)) as { nodeId: string };
    return { process, nodeId: started.nodeId };
  }

  /** Runs `tandem worker drain` on a worker's home, in the background. */
  function drain(workerHome: string, ...args: string[]): TandemProcess {
    const cli = spawnTandem(["worker", "drain", "--home", workerHome, ...args], {
      TANDEM_HOME: join(home, "cli"),
    });
    processes.push(cli);
    return cli;
  }

  const allAvailable = () =>
    eventually(
      async () =>
        (await anonymous.networkStats()).nodes.byStatus.available === WORKERS ? true : undefined,
      `${WORKERS} available workers`,
      120_000,
    );

  function clusterWhere(
    id: string,
    what: string,
    ready: (view: ClusterView) => boolean,
    timeoutMs = 120_000,
  ): Promise<ClusterView> {
    return eventually(
      async () => {
        const view = await consumer.getCluster(id);
        return ready(view) ? view : undefined;
      },
      `cluster ${id}: ${what}`,
      timeoutMs,
    );
  }

  const nodeBecomes = (nodeId: string, status: string, timeoutMs: number) =>
    eventually(
      async () => ((await anonymous.getNode(nodeId)).status === status ? true : undefined),
      `${nodeId} ${status}`,
      timeoutMs,
    );

  /**
   * A drained node's lease ended with `outcome` and nothing was slashed; the stopped worker's
   * node then goes offline.
   */
  async function assertUnslashed(clusterId: string, nodeId: string, outcome: string) {
    const view = await consumer.getCluster(clusterId);
    assert.ok(!view.events.some((e) => e.type === "slashed"), JSON.stringify(view.events));
    assert.equal((await consumer.clusterCosts(clusterId)).slashCompensation, "0.000000");
    const ended = (await anonymous.nodeHistory(nodeId, { limit: 500 })).items.filter(
      (row) => row.action === "lease-ended" && row.detail.clusterId === clusterId,
    );
    assert.deepEqual(
      ended.map((row) => row.detail.outcome),
      [outcome],
      JSON.stringify(ended),
    );
    await nodeBecomes(nodeId, "offline", 60_000);
  }

  before(async () => {
    home = await mkdtemp(join(tmpdir(), "tandem-drain-e2e-"));
    const coordinator = spawnTandem(
      ["coordinator", ...SMALL_PROOF_FLAGS, "--port", "0", "--json", "--log-level", "warn"],
      { TANDEM_HOME: join(home, "c") },
    );
    processes.push(coordinator);
    url = (JSON.parse(await coordinator.line(/^\{/, 60_000)) as { url: string }).url;
    anonymous = new TandemClient({ baseUrl: url });
    supplierKey = (await anonymous.createAccount({ roles: ["supplier"] })).apiKey;
    const buyer = await anonymous.createAccount({ roles: ["consumer"] });
    consumer = new TandemClient({ baseUrl: url, apiKey: buyer.apiKey });
    const admin = new TandemClient({
      baseUrl: url,
      apiKey: (await readFile(join(home, "c", "admin.key"), "utf8")).trim(),
    });
    await admin.deposit(
      { accountId: buyer.accountId, currency: "USDC", amount: "50" },
      "drain-seed",
    );
    for (let i = 0; i < WORKERS; i++) {
      const workerHome = join(home, `w${i}`);
      const { process, nodeId } = await startWorker(workerHome);
      workers.set(nodeId, { process, home: workerHome });
    }
    await allAvailable();
  });

  after(async () => {
    await Promise.all(processes.map((p) => p.kill("SIGTERM")));
    await rm(home, { recursive: true, force: true });
  });

  it("hands a drained rank to the standby with no slash, then the worker stops and can come back", async () => {
    const deployed = await consumer.deployCluster({
      kind: "batch",
      nodes: 1,
      shadow: 1,
      hours: 1,
      gpuModel: "cpu",
      command: ["sh", "-c", "sleep 30"],
    });
    const running = await clusterWhere(deployed.id, "running", (v) => v.status === "running");
    const drainedNode = running.nodes.find((n) => n.active && n.rank === 0)!.nodeId;
    const standbyNode = running.nodes.find((n) => n.active && n.role === "standby")!.nodeId;
    const drained = workers.get(drainedNode)!;

    const cli = drain(drained.home, "--json");
    assert.equal(await cli.exited, 0, cli.stderr.join("\n"));
    const answer = JSON.parse(cli.stdout.join("\n")) as Record<string, unknown>;
    assert.equal(answer.pid, drained.process.child.pid);
    assert.equal(answer.drained, true);
    assert.equal(await drained.process.exited, 0, drained.process.stderr.join("\n"));

    // The rank runs on, on the former standby.
    const moved = await clusterWhere(deployed.id, "rank 0 taken over", (v) =>
      v.events.some((e) => e.type === "takeover"),
    );
    const context = JSON.stringify(moved.events);
    const failover = moved.events.find((e) => e.type === "failover");
    assert.ok(failover !== undefined, context);
    assert.equal(failover.detail.rank, 0, context);
    assert.equal(failover.detail.fromNodeId, drainedNode, context);
    assert.equal(failover.detail.toNodeId, standbyNode, context);
    assert.equal(failover.detail.via, "standby", context);
    assert.match(String(failover.detail.reason), /drained/, context);
    const takeover = moved.events.find((e) => e.type === "takeover")!;
    assert.equal(takeover.detail.rank, 0, context);
    assert.equal(takeover.detail.fromNodeId, drainedNode, context);
    assert.equal(
      moved.nodes.find((n) => n.nodeId === drainedNode)?.status,
      "handed-over",
      JSON.stringify(moved.nodes),
    );
    const rank0 = moved.nodes.find((n) => n.active && n.rank === 0);
    assert.equal(rank0?.nodeId, standbyNode, JSON.stringify(moved.nodes));
    assert.ok(!FINAL.includes(moved.status), `cluster ended: ${moved.status}`);

    // An announced stop is no failure: nothing slashed, the node's record says drained.
    await assertUnslashed(deployed.id, drainedNode, "drained");

    // A drain ends when the worker stops: restarted on its home, the node is rentable again.
    const restarted = await startWorker(drained.home);
    drained.process = restarted.process;
    assert.equal(restarted.nodeId, drainedNode);
    await nodeBecomes(drainedNode, "available", 120_000);

    // The job finishes on the standby, and the cluster with it.
    const done = await clusterWhere(deployed.id, "ended", (v) => FINAL.includes(v.status));
    assert.equal(done.status, "completed", JSON.stringify(done.events));
    const costs = await consumer.clusterCosts(deployed.id);
    assert.equal(costs.slashCompensation, "0.000000");
    assert.equal(costs.escrow, "0.000000");
    await allAvailable();
  });

  it("waits while nothing can take the rank, and completes once the cluster ends", async () => {
    const deployed = await consumer.deployCluster({
      kind: "batch",
      nodes: WORKERS,
      hours: 1,
      gpuModel: "cpu",
      command: ["sh", "-c", "sleep 600"],
    });
    const running = await clusterWhere(deployed.id, "running", (v) => v.status === "running");
    const drainedNode = running.nodes.find((n) => n.active && n.rank === 1)!.nodeId;
    const drained = workers.get(drainedNode)!;

    // Human output this time: it says it is still waiting every 15 s.
    const cli = drain(drained.home);
    await cli.line(/^asked worker \d+ to drain/, 60_000);
    await eventually(
      () =>
        Promise.resolve(
          drained.process.stderr.some((l) => l.includes("draining: waiting for the coordinator"))
            ? true
            : undefined,
        ),
      "the worker to ask the coordinator for a drain",
      60_000,
    );
    await cli.line(/^still draining after \d+ s$/, 60_000);
    const waiting = await consumer.getCluster(deployed.id);
    assert.equal(waiting.status, "running", JSON.stringify(waiting.events));
    assert.ok(!waiting.events.some((e) => e.type === "failover"), JSON.stringify(waiting.events));
    assert.equal(
      waiting.nodes.find((n) => n.nodeId === drainedNode)?.active,
      true,
      JSON.stringify(waiting.nodes),
    );
    assert.equal(drained.process.child.exitCode, null, "the worker keeps serving its rank");

    const ended = await consumer.terminateCluster(deployed.id);
    assert.equal(ended.status, "terminated");
    assert.equal(await cli.exited, 0, cli.stderr.join("\n"));
    assert.match(cli.stdout.at(-1) ?? "", /^worker \d+ drained and stopped after [\d.]+ s$/);
    assert.equal(await drained.process.exited, 0, drained.process.stderr.join("\n"));

    // The rank finished in place: no handover, no slash.
    const done = await consumer.getCluster(deployed.id);
    assert.ok(!done.events.some((e) => e.type === "failover"), JSON.stringify(done.events));
    await assertUnslashed(deployed.id, drainedNode, "completed");
  });
});
