// bench/deploy: API call → all 16 ranks running, on loopback, nothing to download (issue 3:
// p50 ≤ 300 ms, p99 ≤ 1 s). One process holds the coordinator (SQLite) and 16 real workers, each
// starting its rank in a real bubblewrap sandbox; "running" means every rank's processes exist.
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { TandemClient } from "../../src/client/client.ts";
import { startCoordinator } from "../../src/coordinator/main.ts";
import { startWorker } from "../../src/worker/main.ts";
import { epochMs, startWorkerProcess, type SandboxMark } from "../support/worker-process.ts";
import { createBwrapRuntime } from "../../src/worker/runtime/bwrap-runtime.ts";
import type { JobRuntime } from "../../src/worker/runtime/job-runtime.ts";

const NODES = Number(process.env.NODES ?? 16);
const RUNS = Number(process.env.RUNS ?? 30);
/**
 * WORKERS=inline runs the 16 workers inside the benchmark's process (the setup of the first
 * figures): one event loop for all, and every sandbox spawn forks that one large process.
 * Default: one process per worker, as on real supplier machines.
 */
const INLINE = process.env.WORKERS === "inline";

const home = await mkdtemp(join(tmpdir(), "tandem-bench-deploy-"));
const coordinator = await startCoordinator({
  home,
  port: 0,
  logLevel: "warn",
  faucet: true,
  rateLimitPerMinute: 1_000_000,
});
const anonymous = new TandemClient({ baseUrl: coordinator.url });
const account = await anonymous.createAccount({ roles: ["consumer", "supplier"] });
const client = new TandemClient({ baseUrl: coordinator.url, apiKey: account.apiKey });
const deposit = await fetch(`${coordinator.url}/v1/wallet/deposits`, {
  method: "POST",
  headers: {
    "content-type": "application/json",
    authorization: `Bearer ${account.apiKey}`,
    "idempotency-key": "bench",
  },
  body: JSON.stringify({ currency: "USDC", amount: "1000" }),
});
if (deposit.status !== 201) throw new Error(`deposit failed: ${deposit.status}`);

// Per-stage timestamps (epoch ms) from each worker's runtime port: when its rank's job-start
// reached the sandbox launch, and when the sandbox's processes existed.
const marks: { rank: string; startMs: number; upMs: number }[] = [];
/** Sandboxes started and not yet gone (processes, cgroups and mounts torn down). */
let liveSandboxes = 0;
const onSandbox = (mark: SandboxMark) => {
  liveSandboxes++;
  marks.push({ ...mark, rank: mark.jobId.slice(mark.jobId.lastIndexOf("_") + 2) });
};
const onSandboxGone = () => liveSandboxes--;
const timedRuntime = (): JobRuntime => {
  const inner = createBwrapRuntime();
  return {
    kind: inner.kind,
    async run(spec) {
      const startMs = epochMs();
      const job = await inner.run(spec);
      onSandbox({ jobId: spec.jobId, startMs, upMs: epochMs() });
      void job.exited.then(onSandboxGone);
      return job;
    },
  };
};
const workers: Array<{ stop(): Promise<unknown> }> = [];
for (let i = 0; i < NODES; i++) {
  // A worker joins with a single-use enrollment token of its supplier, never the API key.
  const { token } = await coordinator.enrollment.issue(account.accountId, 3_600_000, Date.now());
  const config = {
    home: join(home, `w${i}`),
    coordinatorUrl: coordinator.url,
    enrollmentToken: token,
    region: "eu-west",
    zone: `eu-west-${"abc"[i % 3]}`,
  };
  workers.push(
    INLINE
      ? await startWorker(config, { log: () => {}, runtime: timedRuntime() })
      : await startWorkerProcess(config, onSandbox, onSandboxGone),
  );
}
const waitFor = async (check: () => Promise<boolean>) => {
  while (!(await check())) await new Promise((resolve) => setTimeout(resolve, 2));
};
await waitFor(async () => (await anonymous.networkStats()).nodes.byStatus.available === NODES);

const latencies: number[] = [];
const stages: Record<string, number[]> = {};
const stage = (name: string, ms: number) => (stages[name] ??= []).push(ms);
for (let run = 0; run < RUNS; run++) {
  marks.length = 0;
  const started = epochMs();
  const cluster = await client.deployCluster({
    kind: "batch",
    nodes: NODES,
    hours: 1,
    gpuModel: "cpu",
    command: ["sleep", "60"],
  });
  const apiMs = epochMs();
  await waitFor(async () => {
    const row = await coordinator.store.db
      .selectFrom("clusters")
      .select("status")
      .where("id", "=", cluster.id)
      .executeTakeFirstOrThrow();
    return row.status === "running";
  });
  latencies.push(epochMs() - started);
  const head = marks.find((m) => m.rank === "0");
  const others = marks.filter((m) => m.rank !== "0");
  stage("apiReturnedMs", apiMs - started);
  if (head !== undefined && others.length > 0) {
    stage("headStartMs", head.startMs - started);
    stage("headUpMs", head.upMs - started);
    stage("othersFirstStartMs", Math.min(...others.map((m) => m.startMs)) - started);
    stage("othersLastStartMs", Math.max(...others.map((m) => m.startMs)) - started);
    stage("othersLastUpMs", Math.max(...others.map((m) => m.upMs)) - started);
    stage("sandboxLaunchMedianMs", median(marks.map((m) => m.upMs - m.startMs)));
  }
  await client.terminateCluster(cluster.id);
  await waitFor(async () => (await anonymous.networkStats()).nodes.byStatus.available === NODES);
  // Each deploy measures a quiet network: the previous cluster's sandboxes are torn down first
  // (OVERLAP=1 starts the next deploy as soon as the nodes are free, teardown still under way).
  if (process.env.OVERLAP !== "1") await waitFor(() => Promise.resolve(liveSandboxes === 0));
}

function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)] ?? NaN;
}

latencies.sort((a, b) => a - b);
const q = (p: number) =>
  Math.round(latencies[Math.min(latencies.length - 1, Math.floor(p * latencies.length))]!);
console.log(
  JSON.stringify({
    nodes: NODES,
    workers: INLINE ? "inline" : "process",
    runs: RUNS,
    p50Ms: q(0.5),
    p90Ms: q(0.9),
    p99Ms: q(0.99),
    maxMs: q(1),
    // Medians over the runs, ms since the API call.
    stages: Object.fromEntries(Object.entries(stages).map(([k, v]) => [k, Math.round(median(v))])),
  }),
);

await Promise.all(workers.map((w) => w.stop()));
await coordinator.close();
await rm(home, { recursive: true, force: true });
