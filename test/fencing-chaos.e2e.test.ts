// Fencing chaos (issue 18.8), on SQLite and PostgreSQL: a coordinator and four workers as separate
// processes, clusters of one rank and one standby, and three kinds of trouble — a worker agent
// stopped alone (SIGSTOP), an agent stopped together with its job, and the coordinator SIGKILLed
// and restarted around its settlement ticks. A sampler reads the process table every 20 ms the
// whole time: no rank may ever run on two nodes at once. Only the nodes that were stopped may be
// slashed; a coordinator's own restart blames nobody.
import assert from "node:assert/strict";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { it, type TestContext } from "node:test";
import { TandemClient } from "../src/client/client.ts";
import type { ClusterView } from "../src/protocol/clusters.ts";
import { processesWith } from "../src/worker/runtime/job-harness.ts";
import { probeBwrap } from "../src/worker/runtime/select-runtime.ts";
import { freshPostgresDatabase } from "./support/coordinator.ts";
import { postgresForTests } from "./support/postgres.ts";
import { eventually, spawnTandem, type TandemProcess } from "./support/processes.ts";
import { RestartableCoordinator } from "./support/restartable-coordinator.ts";
import { enrollmentEnv } from "./support/workers.ts";

const WORKERS = 4;
const HEARTBEAT_MS = 1000;
const MISSED = 3;

const noSandbox = await probeBwrap();

it(
  "no rank twice, no healthy node slashed: SQLite",
  { skip: noSandbox ?? false, timeout: 600_000 },
  (t) => chaos(t, undefined),
);

it(
  "no rank twice, no healthy node slashed: PostgreSQL",
  { skip: noSandbox ?? false, timeout: 600_000 },
  async (t) => {
    const pg = await postgresForTests();
    if (pg.skip) return t.skip(pg.reason);
    t.after(() => pg.stop());
    await chaos(t, await freshPostgresDatabase(pg.url));
  },
);

/** Counts, every 20 ms, the live processes of each rank marker; remembers the most seen at once. */
class OverlapSampler {
  private readonly most = new Map<string, number>();
  private running = true;
  private readonly loop: Promise<void>;

  constructor(private readonly markers: () => string[]) {
    this.loop = (async () => {
      while (this.running) {
        for (const marker of this.markers()) {
          const copies = (await processesWith(`sleep\0${marker}\0`, true)).length;
          this.most.set(marker, Math.max(this.most.get(marker) ?? 0, copies));
        }
        await new Promise((r) => setTimeout(r, 20));
      }
    })();
  }

  async stop(): Promise<Map<string, number>> {
    this.running = false;
    await this.loop;
    return this.most;
  }
}

async function chaos(t: TestContext, databaseUrl: string | undefined): Promise<void> {
  const home = await mkdtemp(join(tmpdir(), "tandem-fencing-chaos-"));
  t.after(() => rm(home, { recursive: true, force: true }));
  const coordinator = await RestartableCoordinator.start({
    home: join(home, "c"),
    databaseUrl,
    flags: [
      ...["--log-level", "warn", "--heartbeat-interval-ms", String(HEARTBEAT_MS)],
      ...["--missed-heartbeats", String(MISSED)],
    ],
  });
  t.after(() => coordinator.stop());
  const anonymous = new TandemClient({ baseUrl: coordinator.url });
  const supplier = await anonymous.createAccount({ roles: ["supplier"] });
  const buyer = await anonymous.createAccount({ roles: ["consumer"] });
  const consumer = new TandemClient({ baseUrl: coordinator.url, apiKey: buyer.apiKey });
  const admin = new TandemClient({
    baseUrl: coordinator.url,
    apiKey: (await readFile(coordinator.adminKeyFile, "utf8")).trim(),
  });
  await admin.deposit({ accountId: buyer.accountId, currency: "USDC", amount: "50" }, "seed");

  const workers = new Map<string, TandemProcess>();
  for (let i = 0; i < WORKERS; i++) {
    const workerHome = join(home, `w${i}`);
    const worker = spawnTandem(
      ["worker", "start", "--region", "eu-west", "--zone", `eu-west-${"abc"[i % 3]}`],
      { TANDEM_HOME: workerHome, ...(await enrollmentEnv(coordinator.url, supplier.apiKey)) },
    );
    t.after(async () => {
      worker.child.kill("SIGCONT");
      await worker.kill("SIGTERM");
    });
    const nodeId = await eventually(
      async () => {
        const saved = await readFile(join(workerHome, "worker", "device.json"), "utf8").catch(
          () => "",
        );
        try {
          return (JSON.parse(saved) as { nodeId: string }).nodeId;
        } catch {
          return undefined;
        }
      },
      `worker ${i} to register`,
      60_000,
    );
    workers.set(nodeId, worker);
  }
  const available = () =>
    eventually(
      async () =>
        ((await anonymous.networkStats()).nodes.byStatus.available ?? 0) >= 2 ? true : undefined,
      "two available nodes",
      120_000,
    );

  const markers: string[] = [];
  const sampler = new OverlapSampler(() => markers);
  const stopped = new Set<string>();
  const clusters: string[] = [];

  /** A one-rank cluster with a standby whose rank sleeps under its own marker, once running. */
  const deploy = async (): Promise<ClusterView> => {
    await available();
    const marker = `1000.${process.pid}${markers.length}`;
    markers.push(marker);
    const cluster = await consumer.deployCluster({
      kind: "batch",
      nodes: 1,
      shadow: 1,
      hours: 1,
      gpuModel: "cpu",
      command: ["sh", "-c", `exec sleep ${marker}`],
    });
    clusters.push(cluster.id);
    await eventually(
      async () => ((await processesWith(`sleep\0${marker}\0`, true)).length > 0 ? true : undefined),
      `the rank of ${cluster.id} to run`,
      60_000,
    );
    return consumer.getCluster(cluster.id);
  };
  const rankNode = (view: ClusterView) => view.nodes.find((n) => n.active && n.rank === 0)!.nodeId;
  const movedFrom = (clusterId: string, nodeId: string) =>
    eventually(
      async () => {
        const view = await consumer.getCluster(clusterId);
        return view.events.some((e) => e.type === "takeover" && e.detail.fromNodeId === nodeId)
          ? true
          : undefined;
      },
      `the rank of ${clusterId} to run again after ${nodeId}`,
      60_000,
    );

  // 1. The agent alone is frozen; its job would run on if nothing outside the agent fenced it.
  const first = await deploy();
  const agentOnly = rankNode(first);
  stopped.add(agentOnly);
  workers.get(agentOnly)!.child.kill("SIGSTOP");
  await movedFrom(first.id, agentOnly);

  // 2. The agent and its job are frozen together.
  const second = await deploy();
  const agentAndJob = rankNode(second);
  stopped.add(agentAndJob);
  const [sleeper] = await processesWith(`sleep\0${markers.at(-1)!}\0`, true);
  workers.get(agentAndJob)!.child.kill("SIGSTOP");
  if (sleeper !== undefined) process.kill(sleeper, "SIGSTOP");
  await movedFrom(second.id, agentAndJob);

  // 3. The coordinator is killed three times around its settlement ticks (every second). Its
  //    workers fence their ranks when an outage outlasts their budget (2 s here) and reconnect
  //    after their backoff; a rank fenced that way moves without a slash, and nobody is judged
  //    for the outage itself.
  for (const delayMs of [950, 1000, 1050]) {
    await new Promise((r) => setTimeout(r, delayMs));
    await coordinator.killAndRestart();
  }
  // Longer than a restored node's deadline plus the restart grace: every judgement is in.
  await new Promise((r) => setTimeout(r, MISSED * HEARTBEAT_MS + 12_000 + 2_000));

  const most = await sampler.stop();
  for (const [marker, copies] of most)
    assert.ok(copies <= 1, `${marker} ran ${copies} times at once`);
  for (const id of clusters) {
    const view = await consumer.getCluster(id);
    const slashed = view.events.filter((e) => e.type === "slashed").map((e) => e.detail.nodeId);
    for (const nodeId of slashed)
      assert.ok(stopped.has(String(nodeId)), `${id}: healthy ${String(nodeId)} slashed`);
  }
  const audit = await admin.ledgerAudit();
  assert.equal(audit.ok, true, JSON.stringify(audit));
}
