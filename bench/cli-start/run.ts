// bench/cli-start: how long `tandem` takes to start and answer, against a bare `node -e 0` (issue
// 20: `tandem --version` ≤ 3×, `tandem nodes list` ≤ 5×). Paired runs: each round runs every
// variant once, in an order that rotates from round to round, so the machine's load falls on all
// of them alike; each round's time is divided by that round's `node -e 0`, and the ratios' median
// is the figure.
//
//   node --import tsx bench/cli-start/run.ts [--rounds 20] [--before DIR]
//
// Variants: this checkout's `tandem` compiled (dist/, built first unless current) and from source
// (TANDEM_FROM_SOURCE=1, through tsx); with --before, the `tandem` of another checkout as it runs
// there (e.g. the commit before the compiled CLI, unpacked with `git archive`: bench/README.md).
// `nodes list` asks a coordinator (SQLite) in a process of its own, whose 3 nodes are simulated
// workers over real WebSockets (network.ts).
import { fork, spawn, spawnSync } from "node:child_process";
import { existsSync } from "node:fs";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { compiledEntry } from "../../bin/entry.js";
import { machine, progress, round2, summarize } from "../support/stats.ts";

const { values: args } = parseArgs({
  options: { rounds: { type: "string", default: "20" }, before: { type: "string" } },
});
const ROUNDS = Number(args.rounds);
/** The network `nodes list` lists: as many nodes as `npm start`'s dev network. */
const NODES = 3;
const ROOT = new URL("../../", import.meta.url);
const TIME = "/usr/bin/time";

if (compiledEntry(ROOT) === undefined) {
  progress("building dist/ (npm run build)");
  const build = spawnSync(process.execPath, [fileURLToPath(new URL("scripts/build.js", ROOT))], {
    stdio: "inherit",
  });
  if (build.status !== 0) throw new Error("npm run build failed");
}

const home = await mkdtemp(join(tmpdir(), "tandem-bench-cli-start-"));
const network = fork(fileURLToPath(new URL("./network.ts", import.meta.url)), [String(NODES)], {
  execArgv: ["--import", "tsx"],
  stdio: ["ignore", "ignore", "inherit", "ipc"],
});
const coordinator = await new Promise<{ url: string }>((resolve, reject) => {
  network.once("message", (message) => resolve(message as { url: string }));
  network.once("exit", (code) => reject(new Error(`the network process exited (${code})`)));
});
const env = { TANDEM_HOME: home, TANDEM_URL: coordinator.url };

interface Variant {
  name: string;
  argv: string[];
  env: Record<string, string>;
}
const tandems: Array<{ name: string; bin: string; env: Record<string, string> }> = [
  { name: "compiled", bin: fileURLToPath(new URL("bin/tandem.js", ROOT)), env: {} },
  {
    name: "source",
    bin: fileURLToPath(new URL("bin/tandem.js", ROOT)),
    env: { TANDEM_FROM_SOURCE: "1" },
  },
  ...(args.before === undefined
    ? []
    : [{ name: "before", bin: join(args.before, "bin", "tandem.js"), env: {} }]),
];
const variants: Variant[] = [
  { name: "node -e 0", argv: ["-e", "0"], env: {} },
  ...tandems.flatMap((t) => [
    { name: `${t.name}: tandem --version`, argv: [t.bin, "--version"], env: t.env },
    { name: `${t.name}: tandem nodes list`, argv: [t.bin, "nodes", "list"], env: t.env },
  ]),
];

/** One run: wall time from spawn to exit, and the child's CPU time (user + system) if measurable. */
async function run(argv: string[], extraEnv: Record<string, string>) {
  const cpuFile = join(home, "cpu.time");
  const timed = existsSync(TIME);
  const [command, ...rest] = timed
    ? [TIME, "-f", "%U %S", "-o", cpuFile, process.execPath, ...argv]
    : [process.execPath, ...argv];
  const startMs = performance.now();
  const child = spawn(command, rest, {
    env: { PATH: process.env.PATH ?? "/usr/bin:/bin", ...env, ...extraEnv },
    stdio: ["ignore", "pipe", "inherit"],
  });
  let stdout = "";
  child.stdout.on("data", (chunk: Buffer) => (stdout += chunk.toString()));
  const code = await new Promise<number | null>((resolve) => child.once("exit", resolve));
  const wallMs = performance.now() - startMs;
  if (code !== 0) throw new Error(`${argv.join(" ")} exited ${code}`);
  const cpu = timed ? (await readFile(cpuFile, "utf8")).trim().split(/\s+/).map(Number) : [];
  return { wallMs, cpuMs: cpu.length === 2 ? (cpu[0]! + cpu[1]!) * 1000 : NaN, stdout };
}

const startMachine = machine();
const first = await run(variants[2]!.argv, variants[2]!.env);
const listed = first.stdout.trim().split("\n").length - 1;
if (listed !== NODES) throw new Error(`nodes list printed ${listed} nodes, not ${NODES}`);
progress(`${variants.length} variants, ${ROUNDS} rounds against ${coordinator.url}`);

const samples = new Map(
  variants.map((v) => [
    v.name,
    { wallMs: [] as number[], cpuMs: [] as number[], ratio: [] as number[] },
  ]),
);
/** GET /v1/nodes from this process, once a round: what `nodes list` waits for the coordinator. */
const apiMs: number[] = [];
for (let round = 0; round < ROUNDS; round++) {
  const times = new Map<string, number>();
  for (let i = 0; i < variants.length; i++) {
    const v = variants[(round + i) % variants.length]!;
    const { wallMs, cpuMs } = await run(v.argv, v.env);
    times.set(v.name, wallMs);
    samples.get(v.name)!.wallMs.push(wallMs);
    samples.get(v.name)!.cpuMs.push(cpuMs);
  }
  // The coordinator's own share: the same request from this (warm) process.
  const apiStartMs = performance.now();
  const api = await fetch(`${coordinator.url}/v1/nodes`);
  await api.text();
  apiMs.push(performance.now() - apiStartMs);
  const bare = times.get("node -e 0")!;
  for (const [name, wallMs] of times) samples.get(name)!.ratio.push(wallMs / bare);
  if ((round + 1) % 5 === 0) progress(`round ${round + 1}/${ROUNDS}`);
}

const median = (xs: number[]) => summarize(xs).p50;
const results = variants.map((v) => {
  const s = samples.get(v.name)!;
  return {
    variant: v.name,
    wallMs: summarize(s.wallMs),
    cpuMsP50: median(s.cpuMs),
    ratioToNodeP50: round2(median(s.ratio)),
    ratioToNodeP95: round2(summarize(s.ratio).p95),
  };
});
network.send("stop");
await new Promise((resolve) => network.once("exit", resolve));
await rm(home, { recursive: true, force: true });
process.stdout.write(
  JSON.stringify(
    {
      start: startMachine,
      end: machine(),
      rounds: ROUNDS,
      before: args.before ?? null,
      apiGetNodesMs: summarize(apiMs),
      results,
    },
    null,
    2,
  ) + "\n",
);
