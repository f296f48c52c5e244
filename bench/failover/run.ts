// bench/failover: a worker's death mid-job → its rank running on another node (issue 5; issue 20
// item 2: at DEFAULT settings, SIGKILL p50 ≤ 3 s and p99 ≤ 5 s, a silently dead machine p50 ≤ 5 s).
// The coordinator runs in a process of its own; each worker is a real `tandem worker start`
// process running its rank in a bubblewrap sandbox. "Running" is the new node's job-accepted (its
// rank's processes exist), which the coordinator records as the cluster's `takeover` event; the
// time is from the failure. Four paths: the rank's worker SIGKILLed (its kernel closes the
// connection) or SIGSTOPped with its fencing watchdog (a frozen machine: silence), each with a
// standby (`--shadow 1`) and without (a fresh node placed). Each run is bounded (RUN_TIMEOUT_S).
//
//   RUNS=10 npx tsx bench/failover/run.ts          # the coordinator's defaults
//   RUNS=10 HEARTBEAT_MS=1000 MISSED=3 npx tsx bench/failover/run.ts
//   PATHS=kill-standby,stop-fresh ...              # a subset
import { spawn, type ChildProcess } from "node:child_process";
import { openSync } from "node:fs";
import { mkdir, mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { TandemClient } from "../../src/client/client.ts";
import type { ClusterView } from "../../src/protocol/clusters.ts";
import { SMALL_PROOF_POLICY } from "../../src/coordinator/config.ts";
import { startCoordinatorProcess } from "../support/coordinator-process.ts";
import { machine, progress, summarize } from "../support/stats.ts";

const RUNS = Number(process.env.RUNS ?? 10);
/** Absent: the coordinator's defaults (what the bench is for). */
const HEARTBEAT_MS =
  process.env.HEARTBEAT_MS === undefined ? undefined : Number(process.env.HEARTBEAT_MS);
const MISSED = process.env.MISSED === undefined ? undefined : Number(process.env.MISSED);
const RUN_TIMEOUT_MS = Number(process.env.RUN_TIMEOUT_S ?? 60) * 1000;
const PATHS = (process.env.PATHS ?? "kill-standby,kill-fresh,stop-standby,stop-fresh").split(",");
const TANDEM = fileURLToPath(new URL("../../bin/tandem.js", import.meta.url));

const home = await mkdtemp(join(tmpdir(), "tandem-bench-failover-"));
const coordinator = await startCoordinatorProcess({
  home: join(home, "c"),
  port: 0,
  logLevel: "warn",
  faucet: true,
  rateLimitPerMinute: 1_000_000,
  // Small proofs of hardware, so workers are verified (available) in seconds on this machine.
  proof: SMALL_PROOF_POLICY,
  ...(HEARTBEAT_MS === undefined ? {} : { heartbeatIntervalMs: HEARTBEAT_MS }),
  ...(MISSED === undefined ? {} : { missedHeartbeats: MISSED }),
});
const anonymous = new TandemClient({ baseUrl: coordinator.url });
const account = await anonymous.createAccount({ roles: ["consumer", "supplier"] });
const client = new TandemClient({ baseUrl: coordinator.url, apiKey: account.apiKey });
await client.deposit({ currency: "USDC", amount: "1000" }, "bench");

/**
 * Three worker processes, each restartable on its home; each leads a process group (with its
 * fencing watchdog) so that SIGSTOP can freeze the whole agent as a dead machine would be.
 */
const workers = new Map<string, { home: string; child: ChildProcess }>();
const startWorker = async (workerHome: string): Promise<ChildProcess> => {
  // A worker joins with a single-use enrollment token of its supplier, never the API key.
  const { token } = await client.createEnrollmentToken();
  await mkdir(workerHome, { recursive: true });
  const log = openSync(join(workerHome, "worker.log"), "a");
  return spawn(
    process.execPath,
    [TANDEM, "worker", "start", "--region", "eu-west", "--zone", "eu-west-a", "--home", workerHome],
    {
      env: { ...process.env, TANDEM_URL: coordinator.url, TANDEM_ENROLL_TOKEN: token },
      stdio: ["ignore", log, log],
      detached: true,
    },
  );
};
const until = async <T>(
  check: () => Promise<T | undefined>,
  timeoutMs = RUN_TIMEOUT_MS,
): Promise<T> => {
  for (const deadline = Date.now() + timeoutMs; Date.now() < deadline;) {
    const value = await check();
    if (value !== undefined) return value;
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  throw new Error(`not within ${timeoutMs} ms`);
};
const signalGroup = (child: ChildProcess, signal: NodeJS.Signals) => {
  try {
    process.kill(-child.pid!, signal);
  } catch {
    // already gone
  }
};
const available = async (n: number) =>
  until(async () =>
    (await anonymous.networkStats()).nodes.byStatus.available === n ? true : undefined,
  );

for (let i = 0; i < 3; i++) {
  const workerHome = join(home, `w${i}`);
  const child = await startWorker(workerHome);
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

/** One failure: deploy, run, kill or freeze the rank's worker, time until its rank runs elsewhere. */
async function failOnce(shadow: number, how: "kill" | "stop"): Promise<number> {
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
  if (how === "kill") worker.child.kill("SIGKILL");
  else signalGroup(worker.child, "SIGSTOP");
  const takeover = await until(async () => {
    const view: ClusterView = await client.getCluster(cluster.id);
    if (view.status === "failed") throw new Error(`cluster failed: ${JSON.stringify(view.events)}`);
    return view.events.find((e) => e.type === "takeover");
  });
  const tookMs = Date.parse(takeover.at) - killedAt;
  await client.terminateCluster(cluster.id);
  signalGroup(worker.child, "SIGKILL"); // the frozen agent and its watchdog, or the killed one's watchdog
  await until(async () => ((await client.getNode(victim)).status === "offline" ? true : undefined));
  worker.child = await startWorker(worker.home);
  await available(3);
  return tookMs;
}

const results: Record<string, ReturnType<typeof summarize> & { failed: number }> = {};
for (const path of PATHS) {
  const [how, kind] = path.split("-") as ["kill" | "stop", "standby" | "fresh"];
  const samples: number[] = [];
  let failed = 0;
  for (let run = 0; run < RUNS; run++) {
    try {
      samples.push(await failOnce(kind === "standby" ? 1 : 0, how));
    } catch (error) {
      failed++;
      progress(`${path} run ${run} failed: ${String(error)}`);
      for (const worker of workers.values()) {
        signalGroup(worker.child, "SIGCONT");
        if (worker.child.exitCode !== null || worker.child.signalCode !== null)
          worker.child = await startWorker(worker.home);
      }
      await available(3).catch(() => undefined);
    }
  }
  results[path] = { ...summarize(samples), failed };
  progress(`${path}: ${JSON.stringify(results[path])}`);
}
console.log(
  JSON.stringify(
    {
      heartbeatMs: HEARTBEAT_MS ?? "default",
      missedHeartbeats: MISSED ?? "default",
      runs: RUNS,
      results,
      machine: machine(),
    },
    null,
    2,
  ),
);

for (const { child } of workers.values()) signalGroup(child, "SIGKILL");
await coordinator.stop();
if (process.env.KEEP !== "1") await rm(home, { recursive: true, force: true });
