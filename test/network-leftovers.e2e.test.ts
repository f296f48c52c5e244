// Nothing of a cluster's network survives its lease (issue 14 "Bad input"), across simulated hosts
// (test/support/hosts.ts): a real coordinator on the wan requiring job networks, one real
// `tandem worker start` per host. After a normal end, a failover, a SIGKILLed worker that never
// comes back and a cluster refused the internet, every host is checked for what is left of job
// networks (test/support/job-network-leftovers.ts): namespaces, veths, tables, WireGuard devices,
// wireguard-go processes and their sockets. The same checks find those pieces while the cluster
// runs. A cluster deployed with `internet: false` reaches its own ranks over the overlay and
// nothing else: the harness's internet server sees no connection.
import assert from "node:assert/strict";
import { execFile, type ChildProcess } from "node:child_process";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { after, before, describe, it } from "node:test";
import { TandemClient } from "../src/client/client.ts";
import { startCoordinator, type Coordinator } from "../src/coordinator/main.ts";
import type { ClusterView, DeployRequest } from "../src/protocol/clusters.ts";
import { workerTagOf } from "../src/worker/network/job-networks.ts";
import { createHosts, type Hosts, type SimulatedHost, type TcpServer } from "./support/hosts.ts";
import {
  hostNetworkPieces,
  seenNetworks,
  type SeenNetworks,
} from "./support/job-network-leftovers.ts";
import { eventually, TANDEM_BIN } from "./support/processes.ts";
import { enrollmentEnv, fund } from "./support/workers.ts";

const run = promisify(execFile);
const JOBS = fileURLToPath(new URL("./fixtures/jobs/", import.meta.url));
const FINAL = ["completed", "failed", "terminated", "expired"];
const HOSTS = 4;
const HEARTBEAT_MS = 500;
const MISSED = 3;
/** How long removal may take after an end is known (stop messages, the watchdog's removals). */
const CLEAN_WITHIN_MS = 15_000;

interface Worker {
  index: number;
  host: SimulatedHost;
  home: string;
  tag: string;
  process: ChildProcess;
  nodeId: string;
  /** What the checks found on its host so far. */
  seen: SeenNetworks;
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
    const workerLogs: string[] = [];

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
      });
      internet = await hosts.listen(hosts.internet, 8080);
      const adminKey = coordinator.createdAdminKey!;
      const admin = new TandemClient({ baseUrl: coordinator.url, apiKey: adminKey });
      const supplier = await admin.createAccount({ roles: ["supplier"] });
      for (const [index, host] of hosts.hosts.entries()) {
        const home = join(dir, `worker-${index}`);
        const env = await enrollmentEnv(coordinator.url, supplier.apiKey);
        const argv = [process.execPath, TANDEM_BIN, "worker", "start", "--region", "eu-west"];
        const child = hosts.spawn(
          host,
          [...argv, "--zone", `eu-west-${"abc"[index % 3]}`, "--home", home, "--insecure"],
          {
            env: { PATH: process.env.PATH ?? "/usr/bin:/bin", HOME: dir, ...env },
            stdio: ["ignore", "ignore", "pipe"],
          },
        );
        child.stderr?.on("data", (d: Buffer) => workerLogs.push(`[${index}] ${d.toString()}`));
        workers.push({
          index,
          host,
          home,
          tag: workerTagOf(home),
          process: child,
          nodeId: "",
          seen: seenNetworks(),
        });
      }
      const account = await admin.createAccount({ roles: ["consumer"] });
      await fund({ url: coordinator.url, adminKey }, account.accountId, "50");
      consumer = new TandemClient({ baseUrl: coordinator.url, apiKey: account.apiKey });
      const anonymous = new TandemClient({ baseUrl: coordinator.url });
      await eventually(
        async () =>
          (await anonymous.networkStats()).nodes.byStatus.available === HOSTS ? true : undefined,
        `${HOSTS} verified workers`,
        120_000,
      ).catch((error: unknown) => {
        throw new Error(workerLogs.join(""), { cause: error });
      });
      for (const worker of workers) {
        const saved = JSON.parse(await readFile(join(worker.home, "device.json"), "utf8")) as {
          nodeId: string;
        };
        worker.nodeId = saved.nodeId;
      }
    });

    after(async () => {
      for (const worker of workers) worker.process.kill("SIGTERM");
      await Promise.all(
        workers.map(
          ({ process: w }) =>
            new Promise((resolve) =>
              w.exitCode === null && w.signalCode === null
                ? w.once("exit", resolve)
                : resolve(undefined),
            ),
        ),
      );
      await coordinator?.close();
      await hosts?.destroy();
      // Job namespaces live in /run/netns, outside the hosts: a failed check may have left some.
      const tags = workers.map((w) => `tdm-${w.tag}-`);
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
        assert.ok(!FINAL.includes(view.status), `ended early: ${JSON.stringify(view.events)}`);
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

    async function ended(clusterId: string): Promise<ClusterView> {
      return eventually(
        async () => {
          const view = await consumer.getCluster(clusterId);
          return FINAL.includes(view.status) ? view : undefined;
        },
        `cluster ${clusterId} to end`,
        120_000,
      );
    }

    async function logText(clusterId: string): Promise<string> {
      return (await consumer.clusterLogs(clusterId)).items
        .map((l) => `[${l.rank}] ${l.text}`)
        .join("\n");
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
        batch("sleep 8; echo rank-$TANDEM_RANK-ok", { shadow: 1 }),
      );
      const running = await networksUp(cluster.id, true);
      const victimNode = running.nodes.find((n) => n.active && n.rank === 1)!;
      const victim = workerOf(victimNode.nodeId);
      await kill(victim);
      await assertClean([victim], "on the killed worker's host");
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
      const now = await consumer.getCluster(cluster.id);
      if (!FINAL.includes(now.status)) await consumer.terminateCluster(cluster.id);
      await ended(cluster.id);
      await assertClean(workers, "after the cluster ended");
    });
  },
);
