// bench/cli-start/deploy.ts: a deploy plus a status check, as a user types them, against Slurm's
// `srun true` (issue 20: "74–85× `srun true` through the CLI, level with it through the HTTP API").
// Paired rounds, the order rotating from round to round; each row's time is divided by that
// round's `srun true` (or, without Slurm, `node -e 0`), and the ratios' median is the figure.
//
//   sh bench/support/private-slurm.sh node --import tsx bench/cli-start/deploy.ts [--rounds 20] [--before DIR]
//
// Rows: `srun true` (a one-task job on a private one-host Slurm: bench/support/private-slurm.sh;
// left out when SLURM_CONF is not set); the HTTP API from this warm process (`POST /v1/clusters`
// then `GET /v1/clusters/:id`); `tandem cluster deploy --json … -- true` then `tandem cluster show
// --json` with this checkout's compiled CLI, and with --before DIR's (bench/README.md). The
// coordinator (SQLite) runs in this process with one real worker in a process of its own (bubblewrap
// sandbox): each deploy's `true` really runs, and the next row starts once the node is free again.
import { spawn, spawnSync } from "node:child_process";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { compiledEntry } from "../../bin/entry.js";
import { TandemClient } from "../../src/client/client.ts";
import { startCoordinator } from "../../src/coordinator/main.ts";
import { machine, progress, round2, summarize } from "../support/stats.ts";
import { startWorkerProcess } from "../support/worker-process.ts";

const { values: args } = parseArgs({
  options: { rounds: { type: "string", default: "20" }, before: { type: "string" } },
});
const ROUNDS = Number(args.rounds);
const ROOT = new URL("../../", import.meta.url);
const SLURM = process.env.SLURM_CONF !== undefined;

if (compiledEntry(ROOT) === undefined) {
  progress("building dist/ (npm run build)");
  const build = spawnSync(process.execPath, [fileURLToPath(new URL("scripts/build.js", ROOT))], {
    stdio: "inherit",
  });
  if (build.status !== 0) throw new Error("npm run build failed");
}

const home = await mkdtemp(join(tmpdir(), "tandem-bench-cli-deploy-"));
const coordinator = await startCoordinator({
  home: join(home, "c"),
  port: 0,
  logLevel: "error", // stdout is the benchmark's JSON
  faucet: true,
  rateLimitPerMinute: 1_000_000,
});
const anonymous = new TandemClient({ baseUrl: coordinator.url });
const account = await anonymous.createAccount({ roles: ["consumer", "supplier"] });
const client = new TandemClient({ baseUrl: coordinator.url, apiKey: account.apiKey });
await client.deposit({ accountId: account.accountId, currency: "USDC", amount: "1000" });
const { token } = await coordinator.enrollment.issue(account.accountId, 3_600_000, Date.now());
const worker = await startWorkerProcess(
  {
    home: join(home, "w"),
    coordinatorUrl: coordinator.url,
    enrollmentToken: token,
    region: "eu-west",
    zone: "eu-west-a",
  },
  () => {},
);
const idle = async () => {
  while ((await anonymous.networkStats()).nodes.byStatus.available !== 1)
    await new Promise((resolve) => setTimeout(resolve, 5));
};
await idle();

const DEPLOY = ["--kind", "batch", "--nodes", "1", "--hours", "1", "--gpu", "cpu", "--", "true"];
const cliEnv = {
  PATH: process.env.PATH ?? "/usr/bin:/bin",
  TANDEM_HOME: join(home, "cli"),
  TANDEM_URL: coordinator.url,
  TANDEM_API_KEY: account.apiKey,
};

/** Runs a command to its end; its stdout. */
async function run(command: string, argv: string[]): Promise<string> {
  const child = spawn(command, argv, {
    env: { ...cliEnv, ...(SLURM ? { SLURM_CONF: process.env.SLURM_CONF } : {}) },
    stdio: ["ignore", "pipe", "inherit"],
  });
  let stdout = "";
  child.stdout.on("data", (chunk: Buffer) => (stdout += chunk.toString()));
  const code = await new Promise<number | null>((resolve) => child.once("exit", resolve));
  if (code !== 0) throw new Error(`${command} ${argv.join(" ")} exited ${code}`);
  return stdout;
}

/** Deploy + status through a `tandem` at `bin`; the cluster's id (to wait for its end). */
async function viaCli(bin: string): Promise<string> {
  const deployed = JSON.parse(
    await run(process.execPath, [bin, "cluster", "deploy", "--json", ...DEPLOY]),
  ) as { id: string };
  await run(process.execPath, [bin, "cluster", "show", deployed.id, "--json"]);
  return deployed.id;
}

const rows: Array<{ name: string; once(): Promise<string | undefined> }> = [
  SLURM
    ? { name: "srun true", once: async () => (await run("srun", ["true"]), undefined) }
    : { name: "node -e 0", once: async () => (await run(process.execPath, ["-e", "0"]), undefined) },
  {
    name: "HTTP API: deploy + status",
    async once() {
      const cluster = await client.deployCluster({
        kind: "batch",
        nodes: 1,
        hours: 1,
        gpuModel: "cpu",
        command: ["true"],
      });
      await client.getCluster(cluster.id);
      return cluster.id;
    },
  },
  {
    name: "compiled CLI: deploy + status",
    once: () => viaCli(fileURLToPath(new URL("bin/tandem.js", ROOT))),
  },
  ...(args.before === undefined
    ? []
    : [
        {
          name: "before CLI: deploy + status",
          once: () => viaCli(join(args.before!, "bin", "tandem.js")),
        },
      ]),
];
const baseline = rows[0]!.name;

/** Waits (untimed) until a row's cluster has ended and its node is free for the next row. */
async function settle(clusterId: string | undefined): Promise<void> {
  if (clusterId === undefined) return;
  for (;;) {
    const { status } = await client.getCluster(clusterId);
    if (status !== "pending" && status !== "provisioning" && status !== "running") break;
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
  await idle();
}

const startMachine = machine();
for (const row of rows) await settle(await row.once()); // warm every path once
progress(`${rows.length} rows, ${ROUNDS} rounds against ${coordinator.url}`);
const samples = new Map(rows.map((r) => [r.name, { ms: [] as number[], ratio: [] as number[] }]));
for (let round = 0; round < ROUNDS; round++) {
  const times = new Map<string, number>();
  for (let i = 0; i < rows.length; i++) {
    const row = rows[(round + i) % rows.length]!;
    const startMs = performance.now();
    const clusterId = await row.once();
    const ms = performance.now() - startMs;
    times.set(row.name, ms);
    samples.get(row.name)!.ms.push(ms);
    await settle(clusterId);
  }
  for (const [name, ms] of times) samples.get(name)!.ratio.push(ms / times.get(baseline)!);
  if ((round + 1) % 5 === 0) progress(`round ${round + 1}/${ROUNDS}`);
}

const results = rows.map((row) => {
  const s = samples.get(row.name)!;
  return {
    row: row.name,
    ms: summarize(s.ms),
    [`ratioTo(${baseline})P50`]: round2(summarize(s.ratio).p50),
    p95: round2(summarize(s.ratio).p95),
  };
});
await worker.stop();
await coordinator.close();
await rm(home, { recursive: true, force: true });
process.stdout.write(
  JSON.stringify(
    { start: startMachine, end: machine(), rounds: ROUNDS, before: args.before ?? null, results },
    null,
    2,
  ) + "\n",
);
