// Clusters across hosts that share nothing but a routed network (test/support/hosts.ts): a real
// coordinator on the wan, one real `tandem worker start` per simulated host, real sandboxes, every
// rank in its own network namespace and each cluster on its own WireGuard overlay. torch and Dask
// run across the hosts over the overlay; a hostile rank of another consumer reaches nothing of
// the first, of the hosts or of the coordinator, only its own cluster and the internet.
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { after, before, describe, it } from "node:test";
import { TandemClient } from "../src/client/client.ts";
import { startCoordinator, type Coordinator } from "../src/coordinator/main.ts";
import type { ClusterView } from "../src/protocol/clusters.ts";
import { createHosts, type Hosts, type TcpServer } from "./support/hosts.ts";
import {
  clusterEnded,
  clusterLogText,
  startHostWorkers,
  stopHostWorkers,
  type HostWorker,
} from "./support/host-workers.ts";
import { eventually } from "./support/processes.ts";
import { fund } from "./support/workers.ts";

const JOBS = fileURLToPath(new URL("./fixtures/jobs/", import.meta.url));
const HOSTS = 3;

function enginesMissing(): string | undefined {
  const probe = spawnSync("/usr/bin/python3", ["-c", "import torch, distributed"]);
  if (probe.status === 0) return undefined;
  if (process.env.TANDEM_REQUIRE_ENGINES === "1") throw new Error("torch/distributed missing");
  return "python3-torch / python3-distributed not importable";
}

describe("clusters across hosts", { skip: process.getuid?.() !== 0 && "needs root" }, () => {
  let hosts: Hosts;
  let coordinator: Coordinator;
  let dir = "";
  let internet: TcpServer;
  let workers: HostWorker[] = [];
  let alice: TandemClient;
  let mallory: TandemClient;

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), "tandem-multihost-"));
    hosts = await createHosts({ hosts: HOSTS });
    coordinator = await startCoordinator({
      home: join(dir, "coordinator"),
      host: hosts.rootAddress,
      port: 0,
      logLevel: "silent",
      jobNetworks: "required",
    });
    internet = await hosts.listen(hosts.internet, 8080);
    const adminKey = coordinator.createdAdminKey!;
    const admin = new TandemClient({ baseUrl: coordinator.url, apiKey: adminKey });
    const supplier = await admin.createAccount({ roles: ["supplier"] });
    const consumer = async () => {
      const account = await admin.createAccount({ roles: ["consumer"] });
      await fund({ url: coordinator.url, adminKey }, account.accountId, "20");
      return new TandemClient({ baseUrl: coordinator.url, apiKey: account.apiKey });
    };
    alice = await consumer();
    mallory = await consumer();
    ({ workers } = await startHostWorkers({
      hosts,
      coordinatorUrl: coordinator.url,
      supplierKey: supplier.apiKey,
      dir,
    }));
  });

  after(async () => {
    await stopHostWorkers(workers);
    await coordinator?.close();
    await hosts?.destroy();
    await rm(dir, { recursive: true, force: true });
  });

  const ended = (client: TandemClient, cluster: ClusterView) => clusterEnded(client, cluster.id);
  const logText = clusterLogText;

  async function runScript(kind: "torch" | "dask", script: string): Promise<string> {
    const source = await readFile(join(JOBS, script), "utf8");
    const cluster = await alice.deployCluster({
      kind,
      nodes: HOSTS,
      hours: 1,
      gpuModel: "cpu",
      command: ["/usr/bin/python3", "-c", source],
    });
    const done = await ended(alice, cluster);
    const logs = await logText(alice, cluster.id);
    assert.equal(done.status, "completed", `${JSON.stringify(done.events)}\n${logs}`);
    return logs;
  }

  it(
    "runs a torch all-reduce with one rank on each host, over the overlay",
    { skip: enginesMissing() ?? false },
    async () => {
      const logs = await runScript("torch", "allreduce.py");
      for (let rank = 0; rank < HOSTS; rank++)
        assert.match(logs, new RegExp(`rank ${rank}/${HOSTS} sum=6`));
    },
  );

  it(
    "runs a Dask computation with its workers on the other hosts",
    { skip: enginesMissing() ?? false },
    async () => {
      const logs = await runScript("dask", "dask_client.py");
      assert.match(logs, /\[0\] workers=2 sum_of_squares=328350/);
    },
  );

  it("a hostile rank reaches nothing of another consumer, the hosts or the coordinator", async () => {
    // Alice's rank listens on every address of its namespace, as Dask's scheduler does.
    const victim = await alice.deployCluster({
      kind: "batch",
      nodes: 1,
      hours: 1,
      gpuModel: "cpu",
      command: [
        "/usr/bin/python3",
        "-c",
        "import socket, time\ns = socket.socket()\ns.bind(('0.0.0.0', 7000))\ns.listen()\nprint('listening', flush=True)\ntime.sleep(600)",
      ],
    });
    await eventually(
      async () => ((await logText(alice, victim.id)).includes("listening") ? true : undefined),
      "alice's rank listening",
      60_000,
    );
    const coordinatorPort = new URL(coordinator.url).port;
    const targets = [
      `coordinator=${hosts.rootAddress}:${coordinatorPort}`,
      `coordinator-loopback=127.0.0.1:${coordinatorPort}`,
      `internet=${hosts.internet.address}:8080`,
      ...hosts.hosts.map((h, i) => `host${i}-alice-port=${h.address}:7000`),
      ...hosts.hosts.map((h, i) => `host${i}-overlay-port=${h.address}:51820`),
    ];
    const source = await readFile(join(JOBS, "tenant_probe.py"), "utf8");
    const probe = await mallory.deployCluster({
      kind: "batch",
      nodes: 2,
      hours: 1,
      gpuModel: "cpu",
      env: { TARGETS: targets.join(",") },
      command: ["/usr/bin/python3", "-c", source],
    });
    const done = await ended(mallory, probe);
    const logs = await logText(mallory, probe.id);
    assert.equal(done.status, "completed", logs);
    await alice.terminateCluster(victim.id);
    for (const rank of [0, 1]) {
      const line = new RegExp(`\\[${rank}\\] rank ${rank} (\\{.*\\})`).exec(logs);
      assert.ok(line !== null, logs);
      const results = JSON.parse(line[1]!) as Record<string, unknown>;
      const open = Object.entries(results)
        .filter(([, outcome]) => outcome === "open")
        .map(([name]) => name)
        .sort();
      const own = rank === 0 ? "rank1-reached-me" : "head-over-overlay";
      assert.deepEqual(open, [own, "internet"].sort(), `rank ${rank}: ${line[1]}`);
      assert.deepEqual(results.listening, rank === 0 ? [7001] : [], "only its own sockets");
    }
    // The internet saw each rank at its host's address (NAT), never at a rank's own address.
    const seenAt = new Set(internet.received.map((r) => r.split(" ")[0]));
    const hostAddresses = new Set(hosts.hosts.map((h) => h.publicAddress));
    assert.ok(
      seenAt.size > 0 && [...seenAt].every((a) => hostAddresses.has(a!)),
      [...seenAt].join(),
    );
  });
});
