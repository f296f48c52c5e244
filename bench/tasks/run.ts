// bench/tasks: trivial tasks through a warm autoscaled batch cluster of 4 nodes (issue 20 item 3:
// ≥ 150 tasks/s on these 2 cores). The coordinator (SQLite) and each of the 4 workers run in
// processes of their own; every task is `true` in a real bubblewrap sandbox. One run measures
// each path on a fresh network of its own, its cluster warm (every node has run tasks):
//   before:      one POST /v1/clusters/:id/tasks per task, one sandbox per task
//                (`maxTasksPerRun: 1`: the engine as it was);
//   per-request: one POST per task, idle nodes taking up to 32 queued tasks per run (one sandbox);
//   after:       POST /v1/clusters/:id/tasks/batch (up to 1,000 tasks a request), task runs.
// One-per-request paths keep CONCURRENCY requests in flight with the rate limit raised, so that it
// does not cap the figure (at the default 1,200/min it is 20 tasks/s). Throughput is from the
// first submit until the last task is recorded done; CPU per task is the coordinator's, the
// workers' and their sandboxes' (children reaped, from /proc) over that window.
//
//   TASKS=1000 npx tsx bench/tasks/run.ts
import Database from "better-sqlite3";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { TandemClient } from "../../src/client/client.ts";
import { SMALL_PROOF_POLICY } from "../../src/coordinator/config.ts";
import { MAX_TASKS_PER_SUBMIT } from "../../src/protocol/clusters.ts";
import { startCoordinatorProcess } from "../support/coordinator-process.ts";
import { startWorkerProcess, type WorkerProcess } from "../support/worker-process.ts";
import { machine, progress, round2 } from "../support/stats.ts";

const NODES = Number(process.env.NODES ?? 4);
const TASKS = Number(process.env.TASKS ?? 1000);
const CONCURRENCY = Number(process.env.CONCURRENCY ?? 8);
const PATHS = (process.env.PATHS ?? "before,per-request,after").split(",");

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** A coordinator and NODES verified workers, each in its own process, on a fresh home. */
async function network(maxTasksPerRun: number) {
  const home = await mkdtemp(join(tmpdir(), "tandem-bench-tasks-"));
  const coordinator = await startCoordinatorProcess(
    {
      home: join(home, "c"),
      port: 0,
      logLevel: "warn",
      faucet: true,
      rateLimitPerMinute: 1_000_000,
      maxTasksPerRun,
      // Verification is not what is measured: small proofs pass on a loaded shared machine.
      proof: SMALL_PROOF_POLICY,
    },
    { cpuProfileDir: process.env.COORDINATOR_PROF },
  );
  const workers: WorkerProcess[] = [];
  const db = new Database(join(home, "c", "coordinator.db"), { readonly: true });
  const stop = async () => {
    db.close();
    await Promise.all(workers.map((w) => w.stop()));
    await coordinator.stop();
    await rm(home, { recursive: true, force: true });
  };
  try {
    const anonymous = new TandemClient({ baseUrl: coordinator.url });
    const account = await anonymous.createAccount({ roles: ["consumer", "supplier"] });
    const client = new TandemClient({ baseUrl: coordinator.url, apiKey: account.apiKey });
    await client.deposit({ currency: "USDC", amount: "1000" }, "bench");
    for (let i = 0; i < NODES; i++) {
      const { token } = await client.createEnrollmentToken();
      const config = {
        home: join(home, `w${i}`),
        coordinatorUrl: coordinator.url,
        enrollmentToken: token,
        region: "eu-west",
        zone: `eu-west-${"abc"[i % 3]}`,
      };
      workers.push(await startWorkerProcess(config, () => {}));
    }
    while (((await anonymous.networkStats()).nodes.byStatus.available ?? 0) < NODES)
      await sleep(20);
    return { client, coordinator, workers, db, stop };
  } catch (error) {
    await stop();
    throw error;
  }
}
type Network = Awaited<ReturnType<typeof network>>;

/** Tasks of the cluster recorded as ended (read from the coordinator's file: it costs it nothing). */
function endedCount(net: Network, clusterId: string, status = "'done', 'failed'"): number {
  return net.db
    .prepare<[string], { n: number }>(
      `SELECT count(*) AS n FROM cluster_tasks WHERE cluster_id = ? AND status IN (${status})`,
    )
    .get(clusterId)!.n;
}
const waitEnded = async (net: Network, clusterId: string, n: number) => {
  while (endedCount(net, clusterId) < n) await sleep(5);
};

/** A warm cluster: all NODES leased, each having run tasks (sandbox paths warm), all idle. */
async function warmCluster(net: Network): Promise<string> {
  const deploy = () =>
    net.client.deployCluster({
      kind: "batch",
      nodes: NODES,
      hours: 1,
      gpuModel: "cpu",
      command: ["true"],
      autoscale: { min: NODES, max: NODES, tasksPerNode: 1 },
    });
  // Nodes just verified reach placement's inventory a moment later.
  let cluster: Awaited<ReturnType<typeof deploy>> | undefined;
  for (let tries = 0; cluster === undefined; tries++) {
    try {
      cluster = await deploy();
    } catch (error) {
      if (tries > 200 || (error as { code?: string }).code !== "NO_CAPACITY") throw error;
      await sleep(50);
    }
  }
  await waitEnded(net, cluster.id, 1);
  const warm = Array.from({ length: NODES * 4 }, () => ["true"]);
  await net.client.submitTasks(cluster.id, warm);
  await waitEnded(net, cluster.id, 1 + warm.length);
  return cluster.id;
}

async function cpu(net: Network) {
  const [coordinatorMs, each] = await Promise.all([
    net.coordinator.cpuMs(),
    Promise.all(net.workers.map((w) => w.cpuMs())),
  ]);
  return {
    coordinator: coordinatorMs,
    worker: each.reduce((s, w) => s + w.workerMs, 0),
    sandbox: each.reduce((s, w) => s + w.sandboxMs, 0),
  };
}

const onePerRequest = async (net: Network, id: string, commands: string[][]) => {
  let next = 0;
  const lane = async () => {
    while (next < commands.length) await net.client.submitTask(id, commands[next++]!);
  };
  await Promise.all(Array.from({ length: CONCURRENCY }, lane));
};
const batched = async (net: Network, id: string, commands: string[][]) => {
  for (let at = 0; at < commands.length; at += MAX_TASKS_PER_SUBMIT)
    await net.client.submitTasks(id, commands.slice(at, at + MAX_TASKS_PER_SUBMIT));
};
const paths: Record<
  string,
  { maxTasksPerRun: number; submit: (net: Network, id: string, c: string[][]) => Promise<void> }
> = {
  before: { maxTasksPerRun: 1, submit: onePerRequest },
  "per-request": { maxTasksPerRun: 32, submit: onePerRequest },
  after: { maxTasksPerRun: 32, submit: batched },
};

const results: Record<string, unknown> = {};
for (const name of PATHS) {
  const path = paths[name];
  if (path === undefined) throw new Error(`unknown path ${name}`);
  const net = await network(path.maxTasksPerRun);
  try {
    const id = await warmCluster(net);
    const base = endedCount(net, id);
    progress(`${name}: ${TASKS} tasks on ${id}`);
    const cpu0 = await cpu(net);
    const t0 = performance.now();
    await path.submit(
      net,
      id,
      Array.from({ length: TASKS }, () => ["true"]),
    );
    const submittedMs = performance.now() - t0;
    await waitEnded(net, id, base + TASKS);
    const wallMs = performance.now() - t0;
    const cpu1 = await cpu(net);
    const perTask = (key: keyof typeof cpu0) => round2((cpu1[key] - cpu0[key]) / TASKS);
    const cpuMsPerTask = {
      coordinator: perTask("coordinator"),
      worker: perTask("worker"),
      sandbox: perTask("sandbox"),
    };
    results[name] = {
      maxTasksPerRun: path.maxTasksPerRun,
      tasks: TASKS,
      tasksPerS: round2((TASKS * 1000) / wallMs),
      wallS: round2(wallMs / 1000),
      submittedS: round2(submittedMs / 1000),
      failed: endedCount(net, id, "'failed'"),
      cpuMsPerTask: {
        ...cpuMsPerTask,
        total: round2(cpuMsPerTask.coordinator + cpuMsPerTask.worker + cpuMsPerTask.sandbox),
      },
    };
    progress(JSON.stringify(results[name]));
  } finally {
    await net.stop();
  }
}

console.log(
  JSON.stringify({ machine: machine(), nodes: NODES, concurrency: CONCURRENCY, ...results }),
);
