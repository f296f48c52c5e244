// Isolation overhead (issue 14, "Performance"): torch all-reduce, Dask start→result and a batch
// cluster's deploy → all ranks running, across simulated hosts (test/support/hosts.ts), with job
// networks on and off, in ONE interleaved run.
//
// Each simulated host runs two real `tandem worker start` processes: one of set "on" (job networks
// built, region eu-west) and one of set "off" (`--no-job-networks`, region us-east). The coordinator
// runs in this process on the harness's wan address with jobNetworks "optional"; each cluster is
// placed on one set by `regions`. Rounds alternate the order (on, off, then off, on …) so a drift
// in the machine's load falls on both sets alike. Figures come from the coordinator's own
// timestamps (createdAt, the cluster's events, endedAt), not from the polling client.
//
// Needs root, wireguard-go, python3-torch and python3-distributed.
// `node --import tsx bench/isolation-overhead.ts [--hosts 4] [--runs 6] [--kinds torch,dask,batch]`
import { sweepJobNetworks } from "../src/worker/network/job-netns.ts";
import { workerTagOf } from "../src/worker/network/job-networks.ts";
import { spawnSync, type ChildProcess } from "node:child_process";
import { createWriteStream } from "node:fs";
import { mkdir, mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { TandemClient } from "../src/client/client.ts";
import { startCoordinator } from "../src/coordinator/main.ts";
import type { ClusterView } from "../src/protocol/clusters.ts";
import { createHosts } from "../test/support/hosts.ts";
import { eventually, TANDEM_BIN } from "../test/support/processes.ts";
import { enrollmentEnv, fund } from "../test/support/workers.ts";
import { machine, progress, round2, summarize } from "./support/stats.ts";

const { values } = parseArgs({
  options: {
    hosts: { type: "string", default: "4" },
    runs: { type: "string", default: "6" },
    kinds: { type: "string", default: "torch,dask,batch" },
    "keep-logs": { type: "string" },
  },
});
const HOSTS = Number(values.hosts);
const RUNS = Number(values.runs);
const KINDS = values.kinds.split(",") as Kind[];
type Kind = "torch" | "dask" | "batch";
type SetName = "on" | "off";
const REGION: Record<SetName, string> = { on: "eu-west", off: "us-east" };
const FINAL = ["completed", "failed", "terminated", "expired"];
const JOBS = fileURLToPath(new URL("../test/fixtures/jobs/", import.meta.url));

if (process.getuid?.() !== 0) throw new Error("isolation-overhead needs root");
if (!(HOSTS >= 2 && HOSTS <= 16 && RUNS >= 1)) throw new Error("--hosts 2-16, --runs ≥ 1");
if (!KINDS.every((k) => ["torch", "dask", "batch"].includes(k)))
  throw new Error("--kinds: torch, dask, batch");
if (spawnSync("/usr/bin/python3", ["-c", "import torch, distributed"]).status !== 0)
  throw new Error("python3-torch / python3-distributed not importable");

const commands: Record<Kind, string[]> = {
  torch: ["/usr/bin/python3", "-c", await readFile(join(JOBS, "allreduce.py"), "utf8")],
  dask: ["/usr/bin/python3", "-c", await readFile(join(JOBS, "dask_client.py"), "utf8")],
  batch: ["/bin/sh", "-c", "exit 0"],
};

/** One cluster's figures, ms from its createdAt (the coordinator's clock). */
interface Sample {
  kind: Kind;
  set: SetName;
  round: number;
  status: string;
  /** deploy → all ranks running (the `running` event's provisioningMs). */
  runningMs: number;
  /** deploy → the cluster ended (endedAt). */
  endedMs: number;
  /** deploy → the head reported its rendezvous (`head-ready`). */
  headReadyMs: number | null;
  /** deploy → the last rank's overlay key reached the coordinator (`overlay-joined`). */
  lastOverlayJoinedMs: number | null;
  /** deploy → the first rank's overlay key reached the coordinator. */
  firstOverlayJoinedMs: number | null;
}

const startLoad = machine();
const dir = await mkdtemp(join(tmpdir(), "tandem-bench-isolation-"));
const hosts = await createHosts({ hosts: HOSTS });
const workers: ChildProcess[] = [];
const workerHomes: string[] = [];
const logDir = values["keep-logs"] ?? join(dir, "logs");
/** Set when a worker ends before the bench stops them: every wait then fails at once. */
let workerDied: string | undefined;
let stopping = false;
let coordinator: Awaited<ReturnType<typeof startCoordinator>> | undefined;
try {
  coordinator = await startCoordinator({
    home: join(dir, "coordinator"),
    host: hosts.rootAddress,
    port: 0,
    logLevel: "silent",
    jobNetworks: "optional",
    rateLimitPerMinute: 1_000_000,
  });
  const url = coordinator.url;
  const adminKey = coordinator.createdAdminKey!;
  const admin = new TandemClient({ baseUrl: url, apiKey: adminKey });
  // One supplier per set: enrollment tokens are limited to 30 a minute per account.
  const suppliers = {
    on: await admin.createAccount({ roles: ["supplier"] }),
    off: await admin.createAccount({ roles: ["supplier"] }),
  };
  await mkdir(logDir, { recursive: true });
  for (const [i, host] of hosts.hosts.entries())
    for (const set of ["on", "off"] as const) {
      const home = join(dir, `worker-${set}-${i}`);
      workerHomes.push(home);
      const argv = [process.execPath, TANDEM_BIN, "worker", "start", "--insecure", "--home", home];
      argv.push("--region", REGION[set], "--zone", `${REGION[set]}-${"abc"[i % 3]}`);
      if (set === "off") argv.push("--no-job-networks");
      const worker = hosts.spawn(host, argv, {
        env: {
          PATH: process.env.PATH ?? "/usr/bin:/bin",
          HOME: dir,
          ...(await enrollmentEnv(url, suppliers[set].apiKey)),
        },
        stdio: ["ignore", "ignore", "pipe"],
      });
      worker.stderr!.pipe(createWriteStream(join(logDir, `worker-${set}-${i}.log`)));
      worker.once("exit", (code) => {
        if (!stopping) workerDied = `worker ${set}-${i} exited ${code}: see its log in ${logDir}`;
      });
      workers.push(worker);
    }
  const account = await admin.createAccount({ roles: ["consumer"] });
  await fund({ url, adminKey }, account.accountId, "1000");
  const consumer = new TandemClient({ baseUrl: url, apiKey: account.apiKey });
  const anonymous = new TandemClient({ baseUrl: url });
  const allAvailable = () =>
    eventually(
      async () => {
        if (workerDied !== undefined) throw new Error(workerDied);
        return (await anonymous.networkStats()).nodes.byStatus.available === 2 * HOSTS
          ? true
          : undefined;
      },
      `${2 * HOSTS} available workers`,
      300_000,
    );
  await allAvailable();
  progress(`${2 * HOSTS} workers available on ${HOSTS} hosts`);

  const runOne = async (kind: Kind, set: SetName, round: number): Promise<Sample> => {
    await allAvailable();
    const deployed = await consumer.deployCluster({
      kind,
      nodes: HOSTS,
      hours: 1,
      gpuModel: "cpu",
      regions: [REGION[set]],
      command: commands[kind],
      // Without job networks gloo takes the address the host's name resolves to (127.0.0.1 in a
      // simulated host, 127.0.1.1 on a stock Debian): ranks on other hosts cannot reach it, so
      // the consumer names the interface, as one must on real hosts.
      ...(kind === "torch" && set === "off" ? { env: { GLOO_SOCKET_IFNAME: "eth0" } } : {}),
    });
    const done: ClusterView = await eventually(
      async () => {
        if (workerDied !== undefined) throw new Error(workerDied);
        const view = await consumer.getCluster(deployed.id);
        return FINAL.includes(view.status) ? view : undefined;
      },
      `cluster ${deployed.id}`,
      600_000,
    );
    const t0 = Date.parse(done.createdAt);
    const at = (type: string) =>
      done.events.filter((e) => e.type === type).map((e) => Date.parse(e.at) - t0);
    const running = done.events.find((e) => e.type === "running");
    const joined = at("overlay-joined");
    const sample: Sample = {
      kind,
      set,
      round,
      status: done.status,
      runningMs: Number(running?.detail.provisioningMs ?? NaN),
      endedMs: Date.parse(done.endedAt ?? "") - t0,
      headReadyMs: at("head-ready")[0] ?? null,
      firstOverlayJoinedMs: joined.length > 0 ? Math.min(...joined) : null,
      lastOverlayJoinedMs: joined.length > 0 ? Math.max(...joined) : null,
    };
    if (done.status !== "completed") {
      const logs = (await consumer.clusterLogs(done.id)).items.map((l) => `[${l.rank}] ${l.text}`);
      progress(`${kind}/${set} ${done.status}: ${JSON.stringify(done.events)}\n${logs.join("\n")}`);
    }
    progress(
      `round ${round} ${kind}/${set}: ${done.status} running ${sample.runningMs} ms, ended ${sample.endedMs} ms` +
        ` (head-ready ${sample.headReadyMs}, overlay joined ${sample.firstOverlayJoinedMs}–${sample.lastOverlayJoinedMs})`,
    );
    return sample;
  };

  const samples: Sample[] = [];
  for (let round = 0; round < RUNS; round++)
    for (const kind of KINDS) {
      const order: SetName[] = round % 2 === 0 ? ["on", "off"] : ["off", "on"];
      for (const set of order) samples.push(await runOne(kind, set, round));
    }

  const figures = (kind: Kind, set: SetName) => {
    const ok = samples.filter((s) => s.kind === kind && s.set === set && s.status === "completed");
    const of = (pick: (s: Sample) => number | null) =>
      summarize(ok.map(pick).filter((x): x is number => x !== null && Number.isFinite(x)));
    return {
      completed: ok.length,
      failed: samples.filter((s) => s.kind === kind && s.set === set).length - ok.length,
      endedMs: of((s) => s.endedMs),
      runningMs: of((s) => s.runningMs),
      headReadyMs: of((s) => s.headReadyMs),
      lastOverlayJoinedMs: of((s) => s.lastOverlayJoinedMs),
    };
  };
  const p90 = (kind: Kind, set: SetName, pick: (s: Sample) => number) => {
    const xs = samples
      .filter((s) => s.kind === kind && s.set === set && s.status === "completed")
      .map(pick)
      .sort((a, b) => a - b);
    return xs[Math.max(0, Math.ceil(0.9 * xs.length) - 1)] ?? NaN;
  };
  const results = Object.fromEntries(
    KINDS.map((kind) => {
      const on = figures(kind, "on");
      const off = figures(kind, "off");
      return [
        kind,
        {
          on: { ...on, endedP90: p90(kind, "on", (s) => s.endedMs) },
          off: { ...off, endedP90: p90(kind, "off", (s) => s.endedMs) },
          ratioEndedP50: round2(on.endedMs.p50 / off.endedMs.p50),
          ratioEndedP90: round2(
            p90(kind, "on", (s) => s.endedMs) / p90(kind, "off", (s) => s.endedMs),
          ),
          ratioRunningP50: round2(on.runningMs.p50 / off.runningMs.p50),
        },
      ];
    }),
  );
  // The head-peer wait: a rank other than the head that started without a peer list holding the
  // head waited the full DEFAULT_HEAD_PEER_WAIT_MS (10 s) first.
  let headWaitTimeouts = 0;
  for (let i = 0; i < HOSTS; i++)
    headWaitTimeouts += (
      (await readFile(join(logDir, `worker-on-${i}.log`), "utf8").catch(() => "")).match(
        /no peer list with the head yet/g,
      ) ?? []
    ).length;
  console.log(
    JSON.stringify(
      {
        bench: "isolation-overhead",
        hosts: HOSTS,
        workersPerSet: HOSTS,
        runs: RUNS,
        start: startLoad,
        end: machine(),
        headWaitTimeouts,
        results,
        samples,
      },
      null,
      2,
    ),
  );
} finally {
  stopping = true;
  for (const worker of workers) worker.kill("SIGTERM");
  await Promise.all(
    workers.map(
      (w) =>
        new Promise((resolve) => {
          if (w.exitCode !== null || w.signalCode !== null) return resolve(undefined);
          const timer = setTimeout(() => w.kill("SIGKILL"), 15_000);
          w.once("exit", () => resolve(clearTimeout(timer)));
        }),
    ),
  );
  await coordinator?.close();
  await hosts.destroy();
  for (const home of workerHomes) await sweepJobNetworks(workerTagOf(home)).catch(() => undefined);
  await rm(dir, { recursive: true, force: true }); // --keep-logs writes its logs outside it
}
