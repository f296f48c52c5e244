// bench/failover: a worker SIGKILLed mid-job → its rank running on another node (issue 5: with
// 1 s heartbeats, standby p50 ≤ 3 s, p99 ≤ 5 s; fresh placement p50 ≤ 5 s). The coordinator runs
// in a process of its own; each worker is a real `tandem worker start` process running its rank
// in a bubblewrap sandbox. "Running" is the new node's job-accepted (its rank's processes exist),
// which the coordinator records as the cluster's `takeover` event; the time is from the kill.
//
//   RUNS=20 HEARTBEAT_MS=1000 npx tsx bench/failover/run.ts
import { spawn, type ChildProcess } from "node:child_process";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { TandemClient } from "../../src/client/client.ts";
import type { ClusterView } from "../../src/protocol/clusters.ts";
import { startCoordinatorProcess } from "../support/coordinator-process.ts";
import { machine, summarize } from "../support/stats.ts";

const RUNS = Number(process.env.RUNS ?? 20);
const HEARTBEAT_MS = Number(process.env.HEARTBEAT_MS ?? 1000);
const MISSED = Number(process.env.MISSED ?? 3);
const TANDEM = fileURLToPath(new URL("../../bin/tandem.js", import.meta.url));

const home = await mkdtemp(join(tmpdir(), "tandem-bench-failover-"));
const coordinator = await startCoordinatorProcess({
  home: join(home, "c"),
  port: 0,
  logLevel: "warn",
  faucet: true,
  rateLimitPerMinute: 1_000_000,
  heartbeatIntervalMs: HEARTBEAT_MS,
  missedHeartbeats: MISSED,
});
const anonymous = new TandemClient({ baseUrl: coordinator.url });
const account = await anonymous.createAccount({ roles: ["consumer", "supplier"] });
const client = new TandemClient({ baseUrl: coordinator.url, apiKey: account.apiKey });
await client.deposit({ currency: "USDC", amount: "1000" }, "bench");

/** Three worker processes, each restartable on its home. */
const workers = new Map<string, { home: string; child: ChildProcess }>();
const startWorker = (workerHome: string): ChildProcess =>
  spawn(
    process.execPath,
    [TANDEM, "worker", "start", "--region", "eu-west", "--zone", "eu-west-a", "--home", workerHome],
    {
      env: { ...process.env, TANDEM_URL: coordinator.url, TANDEM_API_KEY: account.apiKey },
      stdio: "ignore",
    },
  );
const until = async <T>(check: () => Promise<T | undefined>): Promise<T> => {
  for (;;) {
    const value = await check();
    if (value !== undefined) return value;
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
};
const available = async (n: number) =>
  until(async () =>
    (await anonymous.networkStats()).nodes.byStatus.available === n ? true : undefined,
  );

for (let i = 0; i < 3; i++) {
  const workerHome = join(home, `w${i}`);
  const child = startWorker(workerHome);
  const nodeId = await until(async () => {
    const saved = await readFile(join(workerHome, "device.json"), "utf8").catch(() => "");
    try {
      return (JSON.parse(saved) as { nodeId: string }).nodeId;
    } catch {
      return undefined; // not yet written, or half-written
    }
  });
  workers.set(nodeId, { home: workerHome, child });
}
await available(3);

/** One failure: deploy, run, SIGKILL the rank's worker, time until its rank runs elsewhere. */
async function failOnce(shadow: number): Promise<number> {
  const cluster = await client.deployCluster({
    kind: "batch",
    nodes: 1,
    shadow,
    hours: 1,
    gpuModel: "cpu",
    command: ["sleep", "600"],
  });
  const running = await until(async () => {
    const view = await client.getCluster(cluster.id);
    return view.status === "running" ? view : undefined;
  });
  const victim = running.nodes.find((n) => n.active && n.rank === 0)!.nodeId;
  const worker = workers.get(victim)!;
  const killedAt = Date.now();
  worker.child.kill("SIGKILL");
  const takeover = await until(async () => {
    const view: ClusterView = await client.getCluster(cluster.id);
    if (view.status === "failed") throw new Error(`cluster failed: ${JSON.stringify(view.events)}`);
    return view.events.find((e) => e.type === "takeover");
  });
  const tookMs = Date.parse(takeover.at) - killedAt;
  await client.terminateCluster(cluster.id);
  worker.child = startWorker(worker.home);
  await available(3);
  return tookMs;
}

const results: Record<string, ReturnType<typeof summarize>> = {};
for (const [name, shadow] of [
  ["standby", 1],
  ["fresh placement", 0],
] as const) {
  const samples: number[] = [];
  for (let run = 0; run < RUNS; run++) samples.push(await failOnce(shadow));
  results[name] = summarize(samples);
}
console.log(
  JSON.stringify(
    {
      heartbeatMs: HEARTBEAT_MS,
      missedHeartbeats: MISSED,
      runs: RUNS,
      results,
      machine: machine(),
    },
    null,
    2,
  ),
);

for (const { child } of workers.values()) child.kill("SIGTERM");
await coordinator.stop();
await rm(home, { recursive: true, force: true });
