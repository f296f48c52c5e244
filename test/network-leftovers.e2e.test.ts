// Nothing of a cluster's network survives its lease (issue 14 "Bad input"), across simulated hosts
// (test/support/hosts.ts): a real coordinator on the wan requiring job networks, one real
// `tandem worker start` per host. After a normal end, a cluster refused the internet, a failover,
// a SIGKILLed worker that never comes back, a frozen worker fenced by its watchdog and a worker
// stopped mid-rank, every host is checked for what is left of job networks
// (test/support/job-network-leftovers.ts): namespaces, veths, tables, WireGuard devices,
// wireguard-go processes and their sockets, processes left in a job namespace. The same checks
// find those pieces while the cluster runs. A cluster deployed `internet: false` reaches its own
// ranks over the overlay and nothing else: the harness's internet server sees no connection. The
// scenarios share one harness and run in order (each kill leaves one host less).
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { after, before, describe, it } from "node:test";
import { TandemClient } from "../src/client/client.ts";
import { SMALL_PROOF_POLICY } from "../src/coordinator/config.ts";
import { startCoordinator, type Coordinator } from "../src/coordinator/main.ts";
import type { ClusterView, DeployRequest } from "../src/protocol/clusters.ts";
import { workerTagOf } from "../src/worker/network/job-networks.ts";
import { createHosts, type Hosts, type TcpServer } from "./support/hosts.ts";
import {
  hostNetworkPieces,
  seenNetworks,
  type SeenNetworks,
} from "./support/job-network-leftovers.ts";
import {
  clusterEnded,
  clusterLogText,
  FINAL_STATUSES,
  startHostWorkers,
  stopHostWorkers,
  type HostWorker,
} from "./support/host-workers.ts";
import { eventually } from "./support/processes.ts";
import { fund } from "./support/workers.ts";

const run = promisify(execFile);
const JOBS = fileURLToPath(new URL("./fixtures/jobs/", import.meta.url));
const HOSTS = 4;
const HEARTBEAT_MS = 500;
const MISSED = 3;
/** How long removal may take after an end is known (stop messages, the watchdog's removals). */
const CLEAN_WITHIN_MS = 15_000;

interface Worker extends HostWorker {
  /** What the checks found on its host so far. */
  readonly seen: SeenNetworks;
}

describe(
  "nothing of a cluster's network survives its lease",
  { skip: process.getuid?.() !== 0 && "needs root" },
  () => {
    let hosts: Hosts;
    let coordinator: Coordinator;
    let dir = "";
    let internet: TcpServer;
    let consumer: TandemClient;
    const workers: Worker[] = [];

    before(async () => {
      dir = await mkdtemp(join(tmpdir(), "tandem-leftovers-"));
      hosts = await createHosts({ hosts: HOSTS });
      coordinator = await startCoordinator({
        home: join(dir, "coordinator"),
        host: hosts.rootAddress,
        port: 0,
        logLevel: "silent",
        jobNetworks: "required",
        heartbeatIntervalMs: HEARTBEAT_MS,
        missedHeartbeats: MISSED,
        proof: SMALL_PROOF_POLICY,
      });
      internet = await hosts.listen(hosts.internet, 8080);
      const adminKey = coordinator.createdAdminKey!;
      const admin = new TandemClient({ baseUrl: coordinator.url, apiKey: adminKey });
      const supplier = await admin.createAccount({ roles: ["supplier"] });
      const account = await admin.createAccount({ roles: ["consumer"] });
      await fund({ url: coordinator.url, adminKey }, account.accountId, "50");
      consumer = new TandemClient({ baseUrl: coordinator.url, apiKey: account.apiKey });
      const started = await startHostWorkers({
        hosts,
        coordinatorUrl: coordinator.url,
        supplierKey: supplier.apiKey,
        dir,
      });
      workers.push(...started.workers.map((w) => ({ ...w, seen: seenNetworks() })));
    });

    after(async () => {
      await stopHostWorkers(workers);
      await coordinator?.close();
      await hosts?.destroy();
      // Job namespaces live in /run/netns, outside the hosts: a failed check may have left some.
      const tags = (hosts?.hosts ?? []).map(
        (_, i) => `tdm-${workerTagOf(join(dir, `worker-${i}`))}-`,
      );
      const { stdout } = await run("ip", ["netns", "list"]);
      for (const name of stdout.split("\n").map((line) => line.split(" ")[0] ?? ""))
        if (tags.some((tag) => name.startsWith(tag)))
          await run("ip", ["netns", "del", name]).catch(() => undefined);
      await rm(dir, { recursive: true, force: true });
    });

    const pieces = (worker: Worker) =>
      hostNetworkPieces(hosts, worker.host, worker.tag, worker.seen);
    const workerOf = (nodeId: string) => {
      const worker = workers.find((w) => w.nodeId === nodeId);
      assert.ok(worker !== undefined, `no worker for ${nodeId}`);
      return worker;
    };
    const pause = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

    /** Waits until every host of `of` holds nothing of a job network; fails naming what is left. */
    async function assertClean(of: readonly Worker[], what: string): Promise<void> {
      const deadline = Date.now() + CLEAN_WITHIN_MS;
      for (;;) {
        const left = await Promise.all(of.map(async (w) => [w.index, await pieces(w)] as const));
        const dirty = left.filter(([, p]) => p.length > 0);
        if (dirty.length === 0) return;
        if (Date.now() > deadline)
          assert.deepEqual(Object.fromEntries(dirty), {}, `${what}: left on hosts`);
        await pause(250);
      }
    }

    /**
     * Waits until the active ranks of `clusterId` run and each one's host shows its job network
     * (namespace and overlay; with internet also the veth and the table): the checks see it.
     */
    async function networksUp(clusterId: string, internetToo: boolean): Promise<ClusterView> {
      const expected = [
        "namespace",
        "process",
        "wireguard-go",
        "socket",
        ...(internetToo ? ["link", "table"] : []),
      ];
      const deadline = Date.now() + 60_000;
      let found: Record<number, string[]> = {};
      for (;;) {
        const view = await consumer.getCluster(clusterId);
        assert.ok(
          !FINAL_STATUSES.includes(view.status),
          `ended early: ${JSON.stringify(view.nodes)} ${JSON.stringify(found)}`,
        );
        const ranks = view.nodes.filter((n) => n.active && n.rank !== null);
        if (ranks.length > 0 && ranks.every((n) => n.status === "running")) {
          found = {};
          for (const node of ranks) {
            const worker = workerOf(node.nodeId);
            found[worker.index] = await pieces(worker);
          }
          const kinds = Object.values(found).map((p) => new Set(p.map((l) => l.split(" ")[0])));
          if (kinds.every((k) => expected.every((e) => k.has(e)))) {
            if (!internetToo)
              for (const k of kinds)
                assert.ok(!k.has("link") && !k.has("table"), JSON.stringify(found));
            return view;
          }
        }
        if (Date.now() > deadline)
          assert.fail(`cluster ${clusterId}'s networks not seen up: ${JSON.stringify(found)}`);
        await pause(100);
      }
    }

    const ended = (clusterId: string) => clusterEnded(consumer, clusterId, 120_000);
    const logText = (clusterId: string) => clusterLogText(consumer, clusterId);

    /** Terminates the cluster unless it has ended (it may have failed), then checks every host. */
    async function terminated(clusterId: string): Promise<void> {
      const now = await consumer.getCluster(clusterId);
      if (!FINAL_STATUSES.includes(now.status)) await consumer.terminateCluster(clusterId);
      await ended(clusterId);
      await assertClean(workers, "after the cluster ended");
    }

    /** A 2-node batch cluster running `script` in sh (`args` are its $0, $1…). */
    const batch = (
      script: string,
      more: Partial<DeployRequest> = {},
      args: readonly string[] = [],
    ): DeployRequest => ({
      kind: "batch",
      nodes: 2,
      hours: 1,
      gpuModel: "cpu",
      command: ["/bin/sh", "-c", script, ...args],
      ...more,
    });

    const kill = (worker: Worker) =>
      new Promise<void>((resolve) => {
        worker.process.once("exit", () => resolve());
        worker.process.kill("SIGKILL");
      });

    it("a 2-node batch cluster that completes leaves nothing", async () => {
      const cluster = await consumer.deployCluster(batch("sleep 5; echo rank-$TANDEM_RANK-ok"));
      await networksUp(cluster.id, true);
      const done = await ended(cluster.id);
      assert.equal(done.status, "completed", await logText(cluster.id));
      await assertClean(workers, "after a normal end");
    });

    it("--no-internet: the ranks reach each other over the overlay and nothing else", async () => {
      const source = await readFile(join(JOBS, "tenant_probe.py"), "utf8");
      const coordinatorPort = new URL(coordinator.url).port;
      const targets = [
        `internet=${hosts.internet.address}:8080`,
        `coordinator=${hosts.rootAddress}:${coordinatorPort}`,
        ...hosts.hosts.map((h, i) => `host${i}=${h.address}:${coordinatorPort}`),
      ];
      // The probe starts after a pause, so the checks see the cluster's network up first.
      const cluster = await consumer.deployCluster(
        batch(
          'sleep 4; exec /usr/bin/python3 -c "$0"',
          { env: { TARGETS: targets.join(",") }, internet: false },
          [source],
        ),
      );
      await networksUp(cluster.id, false);
      const done = await ended(cluster.id);
      const logs = await logText(cluster.id);
      assert.equal(done.status, "completed", logs);
      for (const rank of [0, 1]) {
        const line = new RegExp(`\\[${rank}\\] rank ${rank} (\\{.*\\})`).exec(logs);
        assert.ok(line !== null, logs);
        const results = JSON.parse(line[1]!) as Record<string, unknown>;
        const open = Object.entries(results)
          .filter(([, outcome]) => outcome === "open")
          .map(([name]) => name);
        assert.deepEqual(open, [rank === 0 ? "rank1-reached-me" : "head-over-overlay"], line[1]);
      }
      assert.deepEqual(internet.received, [], "the internet saw a connection");
      await assertClean(workers, "after a cluster without internet");
    });

    it("a failover: the killed worker's host is clean once fenced, the others at the end", async () => {
      const cluster = await consumer.deployCluster(
        // Long enough that the standby's network is seen up before the cluster completes.
        batch("sleep 30; echo rank-$TANDEM_RANK-ok", { shadow: 1 }),
      );
      const running = await networksUp(cluster.id, true);
      const victimNode = running.nodes.find((n) => n.active && n.rank === 1)!;
      const victim = workerOf(victimNode.nodeId);
      await kill(victim);
      await assertClean([victim], "on the killed worker's host");
      // The standby took rank 1: its own network is up (and must go at the end, too).
      const moved = await networksUp(cluster.id, true);
      assert.ok(!moved.nodes.some((n) => n.active && n.nodeId === victim.nodeId));
      const done = await ended(cluster.id);
      assert.equal(done.status, "completed", JSON.stringify(done.events));
      const rank1 = done.nodes.filter((n) => n.rank === 1).map((n) => n.nodeId);
      assert.ok(rank1.length === 2 && rank1.includes(victim.nodeId), JSON.stringify(done.nodes));
      await assertClean(workers, "after a failover");
    });

    it("a SIGKILLed worker that never comes back leaves nothing on its host", async () => {
      const cluster = await consumer.deployCluster(batch("sleep 600"));
      const running = await networksUp(cluster.id, true);
      const headNode = running.nodes.find((n) => n.active && n.rank === 0)!;
      const victim = workerOf(headNode.nodeId);
      await kill(victim);
      await assertClean([victim], "on the killed worker's host");
      // The rank's other host and a fresh match, if the rank moved there, end with the lease.
      await terminated(cluster.id);
    });

    it("a frozen worker (SIGSTOP): its host is clean once its watchdog fenced the rank", async () => {
      const cluster = await consumer.deployCluster(batch("sleep 600"));
      const running = await networksUp(cluster.id, true);
      const node = running.nodes.find((n) => n.active && n.rank === 1)!;
      const frozen = workerOf(node.nodeId);
      frozen.process.kill("SIGSTOP");
      try {
        await assertClean([frozen], "on the frozen worker's host");
      } finally {
        frozen.process.kill("SIGCONT");
      }
      await terminated(cluster.id);
      // Thawed, it reconnects: the next scenario needs it.
      await eventually(
        async () =>
          (await consumer.getNode(node.nodeId)).status === "available" ? true : undefined,
        "the thawed worker available again",
        60_000,
      );
    });

    it("a worker stopped (SIGTERM) while its rank runs leaves nothing on its host", async () => {
      const cluster = await consumer.deployCluster(batch("sleep 600"));
      const running = await networksUp(cluster.id, true);
      const node = running.nodes.find((n) => n.active && n.rank === 1)!;
      const stopped = workerOf(node.nodeId);
      await new Promise((resolve) => {
        stopped.process.once("exit", resolve);
        stopped.process.kill("SIGTERM");
      });
      assert.deepEqual(await pieces(stopped), [], "left once the worker has exited");
      await terminated(cluster.id);
    });
  },
);
