/**
 * bench/overlay-throughput: rank-to-rank TCP over a cluster's WireGuard overlay against the plain
 * veth path between the same two job namespaces (issue 14: ≥ 50 % of the veth throughput, ≤ +0.2 ms
 * per round trip), and the overlay's per-rank set-up and tear-down time.
 *
 *   node --import tsx bench/overlay-throughput.ts [--rounds 3] [--seconds 4] [--pings 2000]
 *        [--setups 10]
 *
 * Two namespaces play hosts A and B (joined by a veth, 172.31.78.1 ↔ .2); job namespaces j0 (on A)
 * and j1 (on B) hold ranks 0 and 1 of one overlay (src/worker/network/wireguard-overlay.ts, the
 * worker's real code), and a direct veth (10.99.0.1 ↔ .2) is the baseline. The two paths run
 * interleaved, `--rounds` times each. Throughput: one TCP stream, 64 KiB writes for `--seconds`,
 * bytes counted by the receiver. Round trip: `--pings` sequential 1-byte ping-pongs (TCP_NODELAY),
 * Node on both ends, so the difference between the paths is what the overlay adds. Nothing is
 * done in the root namespace; every namespace is removed at the end.
 */
import { execFileSync, spawn } from "node:child_process";
import { readFileSync, readdirSync } from "node:fs";
import { performance } from "node:perf_hooks";
import { parseArgs } from "node:util";
import { overlayAddressOf } from "../src/protocol/cluster-network.ts";
import { createOverlay, type Overlay } from "../src/worker/network/wireguard-overlay.ts";
import { machine, progress, round2, summarize } from "./support/stats.ts";

const { values: args } = parseArgs({
  options: {
    rounds: { type: "string", default: "3" },
    seconds: { type: "string", default: "4" },
    pings: { type: "string", default: "2000" },
    setups: { type: "string", default: "10" },
  },
});
const rounds = Number(args.rounds);
const seconds = Number(args.seconds);
const pings = Number(args.pings);
const setups = Number(args.setups);

const P = `wgb${process.pid.toString(36)}`;
const ns = (name: string) => `${P}-${name}`;
const made: string[] = [];
const sh = (...argv: string[]) => execFileSync(argv[0]!, argv.slice(1), { encoding: "utf8" });
const inNs = (name: string, ...argv: string[]) => sh("ip", "netns", "exec", ns(name), ...argv);

function addNs(name: string): void {
  sh("ip", "netns", "add", ns(name));
  made.push(ns(name));
  inNs(name, "ip", "link", "set", "lo", "up");
}
function link(a: string, b: string, addrA: string, addrB: string, suffix: string): void {
  sh(
    "ip",
    "-n",
    ns(a),
    "link",
    "add",
    `${P}${suffix}a`,
    "type",
    "veth",
    "peer",
    "name",
    `${P}${suffix}b`,
  );
  sh("ip", "-n", ns(a), "link", "set", `${P}${suffix}b`, "netns", ns(b));
  inNs(a, "ip", "addr", "add", addrA, "dev", `${P}${suffix}a`);
  inNs(b, "ip", "addr", "add", addrB, "dev", `${P}${suffix}b`);
  inNs(a, "ip", "link", "set", `${P}${suffix}a`, "up");
  inNs(b, "ip", "link", "set", `${P}${suffix}b`, "up");
}

/** Receiver: counts a stream's bytes (port 7001) and echoes ping bytes (port 7002). */
const SERVER = `const net=require("net");
net.createServer(s=>{let n=0,t0=0;s.on("data",d=>{if(!t0)t0=performance.now();n+=d.length});
s.on("end",()=>s.end(JSON.stringify({bytes:n,ms:performance.now()-t0})))}).listen(7001,"0.0.0.0",()=>
net.createServer(s=>{s.setNoDelay(true);s.pipe(s)}).listen(7002,"0.0.0.0",()=>console.log("ready")));`;
const STREAM = `const s=require("net").connect(7001,process.argv[1],()=>{const buf=Buffer.alloc(65536);
const end=performance.now()+Number(process.argv[2])*1000;const pump=()=>{while(performance.now()<end){
if(!s.write(buf))return s.once("drain",pump)}s.end()};pump()});let r="";s.on("data",d=>r+=d);
s.on("end",()=>console.log(r));`;
const PING = `const s=require("net").connect(7002,process.argv[1],()=>{s.setNoDelay(true);const n=Number(process.argv[2]);
const out=[];let t=performance.now();s.write("x");s.on("data",()=>{out.push(performance.now()-t);
if(out.length===n){console.log(JSON.stringify(out));s.destroy();return}t=performance.now();s.write("x")})});`;

function nodeIn(job: string, script: string, ...argv: string[]): Promise<string> {
  const child = spawn("ip", ["netns", "exec", ns(job), process.execPath, "-e", script, ...argv], {
    stdio: ["ignore", "pipe", "inherit"],
  });
  let out = "";
  child.stdout.on("data", (d: Buffer) => (out += d.toString()));
  return new Promise((resolve, reject) =>
    child.on("exit", (code) => (code === 0 ? resolve(out) : reject(new Error(`exit ${code}`)))),
  );
}

/** CPU seconds (user + system) used so far by this process's wireguard-go children. */
function wireguardGoCpuS(): number {
  let ticks = 0;
  for (const pid of readdirSync("/proc").filter((d) => /^\d+$/.test(d))) {
    try {
      const m = /^\d+ \((.*)\) \S (\d+)((?: \S+){10}) (\d+) (\d+)/.exec(
        readFileSync(`/proc/${pid}/stat`, "utf8"),
      );
      if (m?.[1] === "wireguard-go" && Number(m[2]) === process.pid)
        ticks += Number(m[4]) + Number(m[5]);
    } catch {
      continue; // ended while we looked
    }
  }
  return ticks / 100; // USER_HZ
}

async function main(): Promise<void> {
  const start = machine();
  for (const name of ["hA", "hB", "j0", "j1", "js"]) addNs(name);
  link("hA", "hB", "172.31.78.1/24", "172.31.78.2/24", "h");
  link("j0", "j1", "10.99.0.1/24", "10.99.0.2/24", "d");

  progress(`set-up/tear-down of ${setups} overlays`);
  const setupMs: number[] = [];
  const teardownMs: number[] = [];
  for (let i = 0; i < setups; i++) {
    let t = performance.now();
    const o = await createOverlay({ jobNetns: ns("js"), hostNetns: ns("hA"), rank: 2 });
    setupMs.push(performance.now() - t);
    t = performance.now();
    await o.destroy();
    teardownMs.push(performance.now() - t);
  }

  const rank0 = await createOverlay({ jobNetns: ns("j0"), hostNetns: ns("hA"), rank: 0 });
  const rank1 = await createOverlay({ jobNetns: ns("j1"), hostNetns: ns("hB"), rank: 1 });
  const overlays: Overlay[] = [rank0, rank1];
  const peer = (rank: number, o: Overlay, address: string) => ({
    rank,
    publicKey: o.publicKey,
    overlayAddress: overlayAddressOf(rank),
    endpoint: { address, port: o.listenPort },
  });
  const t = performance.now();
  await rank0.setPeers([peer(1, rank1, "172.31.78.2")]);
  await rank1.setPeers([peer(0, rank0, "172.31.78.1")]);
  const setPeersMs = (performance.now() - t) / 2;

  const server = spawn("ip", ["netns", "exec", ns("j1"), process.execPath, "-e", SERVER], {
    stdio: ["ignore", "pipe", "inherit"],
  });
  await new Promise((resolve) => server.stdout.once("data", resolve));
  const paths = { veth: "10.99.0.2", overlay: overlayAddressOf(1) } as const;
  const result: Record<keyof typeof paths, { mbitPerS: number[]; rttMs: number[] }> = {
    veth: { mbitPerS: [], rttMs: [] },
    overlay: { mbitPerS: [], rttMs: [] },
  };
  /** wireguard-go's CPU seconds (both ends) per GB carried, over the overlay's streams. */
  const wgCpu = { s: 0, gb: 0 };
  try {
    for (let round = 0; round < rounds; round++)
      for (const path of round % 2 === 0
        ? (["veth", "overlay"] as const)
        : (["overlay", "veth"] as const)) {
        const cpu0 = wireguardGoCpuS();
        const stream = JSON.parse(await nodeIn("j0", STREAM, paths[path], String(seconds))) as {
          bytes: number;
          ms: number;
        };
        if (path === "overlay") {
          wgCpu.s += wireguardGoCpuS() - cpu0;
          wgCpu.gb += stream.bytes / 1e9;
        }
        const mbit = round2((stream.bytes * 8) / (stream.ms * 1000));
        const rtts = JSON.parse(await nodeIn("j0", PING, paths[path], String(pings))) as number[];
        result[path].mbitPerS.push(mbit);
        result[path].rttMs.push(...rtts.slice(Math.floor(rtts.length / 10)));
        progress(`round ${round + 1} ${path}: ${mbit} Mbit/s, p50 RTT ${summarize(rtts).p50} ms`);
      }
  } finally {
    server.kill("SIGKILL");
    await Promise.allSettled(overlays.map((o) => o.destroy()));
  }
  const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] ?? NaN;
  const veth = { mbitPerS: result.veth.mbitPerS, rtt: summarize(result.veth.rttMs) };
  const overlay = { mbitPerS: result.overlay.mbitPerS, rtt: summarize(result.overlay.rttMs) };
  console.log(
    JSON.stringify(
      {
        machine: { start, end: machine() },
        options: { rounds, seconds, pings, setups },
        veth,
        overlay,
        throughputRatio: round2(median(overlay.mbitPerS) / median(veth.mbitPerS)),
        addedRttP50Ms: round2(overlay.rtt.p50 - veth.rtt.p50),
        wireguardGoCpuSPerGB: round2(wgCpu.s / wgCpu.gb),
        overlaySetupMs: summarize(setupMs),
        overlayTeardownMs: summarize(teardownMs),
        setPeersMs: round2(setPeersMs),
      },
      null,
      2,
    ),
  );
}

try {
  await main();
} finally {
  // Deleting a job namespace also ends the wireguard-go in it (and each one dies with this process).
  for (const name of made.reverse()) sh("ip", "netns", "del", name);
}
