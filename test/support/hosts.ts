/**
 * One machine made to look like several hosts, for tests of job networks and workers on other
 * machines (issue 14). Needs root (network namespaces, veth pairs, a bridge, nftables).
 *
 * Layout of one harness (every name starts with its own random prefix `th<6 hex>`):
 *
 *   root namespace (the test process, the coordinator)
 *     └─ veth <p>r  198.18.S.1/24 ── the one change made to the root namespace: a connected /24,
 *                                     no route beyond it, no forwarding, removed by destroy()
 *   <p>-wan: bridge br0 198.18.S.254/24 (the "router" every host's default route points at)
 *     ├─ <p>-inet   198.18.S.2    the "internet": a test runs a TCP server there
 *     ├─ <p>-h1 …   198.18.S.(10+i) a host with a public address
 *     └─ <p>-nat1 … 198.18.S.(100+j), masquerading its own LAN 192.168.77.0/24:
 *          └─ <p>-h<i>  192.168.77.2 (default route via 192.168.77.1): reaches out, cannot be reached
 *
 * 198.18.0.0/15 is the benchmark range (RFC 2544): not private, so a job's block of private ranges
 * does not hide the "internet" from it. Each harness takes its own /24 in it (S picked at random
 * among those no root interface uses), because test files, and engineers, run harnesses at the same
 * time on one machine and two root interfaces in one /24 would steal each other's routes.
 *
 * Processes run in a host through `nsenter --net=/run/netns/<ns>` (not `ip netns exec`): they keep
 * the test's mount namespace, so the namespaces a worker creates inside a host appear in
 * /run/netns for the test and the fencing watchdog to see (`ip netns exec` makes a private mount
 * namespace whose mounts do not propagate back).
 */
import { execFile, spawn, type ChildProcess, type SpawnOptions } from "node:child_process";
import { randomBytes } from "node:crypto";
import os from "node:os";
import { promisify } from "node:util";

const run = promisify(execFile);

/** One simulated machine. */
export interface SimulatedHost {
  /** Its network namespace's name (under /run/netns). */
  readonly namespace: string;
  /** The address of its own interface (behind NAT: its LAN address, 192.168.77.2). */
  readonly address: string;
  /** The address the others see it at: its own, or its NAT's. */
  readonly publicAddress: string;
  readonly behindNat: boolean;
}

export interface CreateHostsOptions {
  /** How many hosts, NATed ones included. */
  hosts: number;
  /** How many of them (the last ones) sit behind their own NAT. Default 0. */
  natHosts?: number;
}

export interface Hosts {
  /** Prefix of every namespace and interface of this harness. */
  readonly prefix: string;
  /**
   * A worker tag (job-netns.ts) unique to this harness: destroy() also removes the job namespaces
   * whose tag starts with it (`tdm-<tag>…`): they live in /run/netns beside the hosts, not in them.
   */
  readonly workerTag: string;
  readonly hosts: readonly SimulatedHost[];
  /** The "internet" namespace (198.18.S.2): no job block list covers it. */
  readonly internet: SimulatedHost;
  /** The root namespace's address on the wan (198.18.S.1): where the test and coordinator listen. */
  readonly rootAddress: string;
  /** The wan /24 (`198.18.S.0/24`). */
  readonly wanCidr: string;
  /** Starts `argv` inside `host`'s network namespace; destroy() kills it if still running. */
  spawn(host: SimulatedHost, argv: readonly string[], options?: SpawnOptions): ChildProcess;
  /** Runs `argv` inside `host` to its end; rejects when it exits non-zero. */
  exec(host: SimulatedHost, argv: readonly string[]): Promise<{ stdout: string; stderr: string }>;
  /** Like exec, but answers the exit code instead of rejecting. */
  tryExec(
    host: SimulatedHost,
    argv: readonly string[],
  ): Promise<{ code: number; stdout: string; stderr: string }>;
  /**
   * Starts a TCP server on `port` of every address of `host`; it records one line per connection:
   * `<peer address> <first line received>`.
   */
  listen(host: SimulatedHost, port: number): Promise<TcpServer>;
  /** Kills what spawn started, removes every namespace and the root veth. Idempotent. */
  destroy(): Promise<void>;
}

/** A TCP server in a simulated host (see Hosts.listen). */
export interface TcpServer {
  /** `<peer address> <line>` per connection so far. */
  readonly received: readonly string[];
  /** Resolves with the received entry matching `pattern`, or undefined after `timeoutMs`. */
  waitFor(pattern: RegExp, timeoutMs?: number): Promise<string | undefined>;
}

const SERVER_SCRIPT = `
const net = require("node:net");
const server = net.createServer((socket) => {
  let data = "";
  const peer = socket.remoteAddress;
  socket.setEncoding("utf8");
  socket.on("data", (d) => { data += d; });
  socket.on("error", () => {});
  socket.on("close", () => process.stdout.write(peer + " " + data.trim() + "\\n"));
});
server.listen(Number(process.argv[1]), "0.0.0.0", () => process.stdout.write("listening\\n"));
`;

const NAT_LAN_HOST = "192.168.77.2";
const NAT_LAN_GATEWAY = "192.168.77.1";

async function ip(args: readonly string[]): Promise<string> {
  return (await run("ip", args)).stdout;
}

async function inNs(ns: string, argv: readonly string[]): Promise<string> {
  return (await run("nsenter", [`--net=/run/netns/${ns}`, "--", ...argv])).stdout;
}

/** A wan /24 in 198.18.0.0/15 that no interface of the root namespace is on. */
async function freeWanSubnet(): Promise<number> {
  const used = new Set<number>();
  for (const m of (await ip(["-4", "-o", "addr", "show"])).matchAll(/inet 198\.18\.(\d+)\./g))
    used.add(Number(m[1]));
  for (let i = 0; i < 100; i++) {
    const s = randomBytes(1)[0]!;
    if (!used.has(s)) return s;
  }
  throw new Error("no free 198.18.x.0/24 for a test network");
}

async function addVethInto(
  ns: string,
  inside: { name: string; address: string; gateway?: string },
  bridgeSide: { ns: string; name: string; master?: string },
): Promise<void> {
  await ip(["-n", ns, "link", "add", inside.name, "type", "veth", "peer", "name", bridgeSide.name]);
  await ip(["-n", ns, "link", "set", bridgeSide.name, "netns", bridgeSide.ns]);
  if (bridgeSide.master !== undefined)
    await ip(["-n", bridgeSide.ns, "link", "set", bridgeSide.name, "master", bridgeSide.master]);
  await ip(["-n", bridgeSide.ns, "link", "set", bridgeSide.name, "up"]);
  await ip(["-n", ns, "addr", "add", inside.address, "dev", inside.name]);
  await ip(["-n", ns, "link", "set", inside.name, "up"]);
  if (inside.gateway !== undefined)
    await ip(["-n", ns, "route", "add", "default", "via", inside.gateway]);
}

/** The NAT box of one NATed host: masquerades its LAN, lets replies in, nothing else. */
function natRules(wan: string, lan: string): string {
  return `table ip harness_nat {
  chain forward {
    type filter hook forward priority 0; policy drop;
    iifname "${lan}" oifname "${wan}" accept
    iifname "${wan}" oifname "${lan}" ct state established,related accept
  }
  chain postrouting {
    type nat hook postrouting priority 100;
    oifname "${wan}" masquerade
  }
}
`;
}

async function nftIn(ns: string, rules: string): Promise<void> {
  await new Promise<void>((resolve, reject) => {
    const child = spawn("nsenter", [`--net=/run/netns/${ns}`, "--", "nft", "-f", "-"], {
      stdio: ["pipe", "ignore", "pipe"],
    });
    let stderr = "";
    child.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
    child.on("error", reject);
    child.on("close", (code) =>
      code === 0 ? resolve() : reject(new Error(`nft -f in ${ns}: ${stderr}`)),
    );
    child.stdin.end(rules);
  });
}

export async function createHosts(options: CreateHostsOptions): Promise<Hosts> {
  if (process.getuid?.() !== 0) throw new Error("createHosts needs root");
  const natHosts = options.natHosts ?? 0;
  if (!(options.hosts >= 1 && options.hosts <= 80 && natHosts >= 0 && natHosts <= options.hosts))
    throw new Error("createHosts: 1-80 hosts, natHosts at most hosts");
  const prefix = `th${randomBytes(3).toString("hex")}`;
  const namespaces: string[] = [];
  const children = new Set<ChildProcess>();
  const rootVeth = `${prefix}r`;
  const workerTag = prefix.slice(2);
  let destroyed = false;

  const destroy = async (): Promise<void> => {
    if (destroyed) return;
    destroyed = true;
    await Promise.all(
      [...children].map(
        (child) =>
          new Promise<void>((resolve) => {
            if (child.exitCode !== null || child.signalCode !== null) return resolve();
            child.once("close", () => resolve());
            child.kill("SIGKILL");
          }),
      ),
    );
    await ip(["link", "del", rootVeth]).catch(() => undefined);
    const jobNamespaces = (await ip(["netns", "list"]).catch(() => ""))
      .split("\n")
      .map((line) => line.split(" ")[0] ?? "")
      .filter((ns) => ns.startsWith(`tdm-${workerTag}`));
    namespaces.push(...jobNamespaces);
    for (const ns of namespaces.reverse()) await ip(["netns", "del", ns]).catch(() => undefined);
  };

  const addNs = async (name: string): Promise<string> => {
    const ns = `${prefix}-${name}`;
    await ip(["netns", "add", ns]);
    namespaces.push(ns);
    await ip(["-n", ns, "link", "set", "lo", "up"]);
    return ns;
  };

  try {
    const s = await freeWanSubnet();
    const wanAddress = (host: number) => `198.18.${s}.${host}`;
    const router = wanAddress(254);
    const wan = await addNs("wan");
    await ip(["-n", wan, "link", "add", "br0", "type", "bridge"]);
    await ip(["-n", wan, "addr", "add", `${router}/24`, "dev", "br0"]);
    await ip(["-n", wan, "link", "set", "br0", "up"]);
    const bridged = (name: string) => ({ ns: wan, name, master: "br0" });

    await ip(["link", "add", rootVeth, "type", "veth", "peer", "name", `${prefix}rw`]);
    await ip(["link", "set", `${prefix}rw`, "netns", wan]);
    await ip(["-n", wan, "link", "set", `${prefix}rw`, "master", "br0", "up"]);
    await ip(["addr", "add", `${wanAddress(1)}/24`, "dev", rootVeth]);
    await ip(["link", "set", rootVeth, "up"]);

    const inet = await addNs("inet");
    await addVethInto(
      inet,
      { name: "eth0", address: `${wanAddress(2)}/24`, gateway: router },
      bridged("inet"),
    );
    const internet: SimulatedHost = {
      namespace: inet,
      address: wanAddress(2),
      publicAddress: wanAddress(2),
      behindNat: false,
    };

    const hosts: SimulatedHost[] = [];
    const publicCount = options.hosts - natHosts;
    for (let i = 1; i <= options.hosts; i++) {
      const ns = await addNs(`h${i}`);
      if (i <= publicCount) {
        await addVethInto(
          ns,
          { name: "eth0", address: `${wanAddress(10 + i)}/24`, gateway: router },
          bridged(`h${i}`),
        );
        hosts.push({
          namespace: ns,
          address: wanAddress(10 + i),
          publicAddress: wanAddress(10 + i),
          behindNat: false,
        });
        continue;
      }
      const natAddress = wanAddress(100 + i);
      const nat = await addNs(`nat${i}`);
      await addVethInto(
        nat,
        { name: "wan0", address: `${natAddress}/24`, gateway: router },
        bridged(`n${i}`),
      );
      await addVethInto(
        ns,
        { name: "eth0", address: `${NAT_LAN_HOST}/24`, gateway: NAT_LAN_GATEWAY },
        { ns: nat, name: "lan0" },
      );
      await ip(["-n", nat, "addr", "add", `${NAT_LAN_GATEWAY}/24`, "dev", "lan0"]);
      await inNs(nat, ["sysctl", "-q", "-w", "net.ipv4.ip_forward=1"]);
      await nftIn(nat, natRules("wan0", "lan0"));
      hosts.push({
        namespace: ns,
        address: NAT_LAN_HOST,
        publicAddress: natAddress,
        behindNat: true,
      });
    }

    const spawnIn = (host: SimulatedHost, argv: readonly string[], opts: SpawnOptions = {}) => {
      if (destroyed) throw new Error("the hosts harness is destroyed");
      const child = spawn("nsenter", [`--net=/run/netns/${host.namespace}`, "--", ...argv], opts);
      children.add(child);
      child.once("close", () => children.delete(child));
      return child;
    };
    const tryExec = (host: SimulatedHost, argv: readonly string[]) =>
      new Promise<{ code: number; stdout: string; stderr: string }>((resolve, reject) => {
        const child = spawnIn(host, argv, { stdio: ["ignore", "pipe", "pipe"] });
        let stdout = "";
        let stderr = "";
        child.stdout!.on("data", (d: Buffer) => (stdout += d.toString()));
        child.stderr!.on("data", (d: Buffer) => (stderr += d.toString()));
        child.once("error", reject);
        child.once("close", (code, signal) =>
          resolve({
            code: code ?? (signal === null ? -1 : 128 + os.constants.signals[signal]),
            stdout,
            stderr,
          }),
        );
      });

    return {
      prefix,
      workerTag,
      hosts,
      internet,
      rootAddress: wanAddress(1),
      wanCidr: `198.18.${s}.0/24`,
      spawn: spawnIn,
      tryExec,
      async exec(host, argv) {
        const result = await tryExec(host, argv);
        if (result.code !== 0)
          throw new Error(
            `${argv.join(" ")} in ${host.namespace} exited ${result.code}: ${result.stderr}`,
          );
        return { stdout: result.stdout, stderr: result.stderr };
      },
      async listen(host, port) {
        const child = spawnIn(host, [process.execPath, "-e", SERVER_SCRIPT, String(port)], {
          stdio: ["ignore", "pipe", "inherit"],
        });
        const received: string[] = [];
        const waiters = new Set<() => void>();
        let buffer = "";
        await new Promise<void>((resolve, reject) => {
          child.once("error", reject);
          child.once("close", (code) => reject(new Error(`TCP server exited ${code}`)));
          child.stdout!.setEncoding("utf8").on("data", (d: string) => {
            buffer += d;
            let nl: number;
            while ((nl = buffer.indexOf("\n")) >= 0) {
              const line = buffer.slice(0, nl);
              buffer = buffer.slice(nl + 1);
              if (line === "listening") resolve();
              else received.push(line);
              for (const wake of waiters) wake();
            }
          });
        });
        return {
          received,
          waitFor(pattern, timeoutMs = 5000) {
            return new Promise((resolve) => {
              const check = () => {
                const seen = received.find((r) => pattern.test(r));
                if (seen === undefined) return false;
                waiters.delete(check);
                clearTimeout(timer);
                resolve(seen);
                return true;
              };
              const timer = setTimeout(() => {
                waiters.delete(check);
                resolve(undefined);
              }, timeoutMs);
              if (!check()) waiters.add(check);
            });
          },
        };
      },
      destroy,
    };
  } catch (error) {
    await destroy();
    throw error;
  }
}

/**
 * A shell snippet that connects to `address:port` over TCP, sends `word` and exits 0, or exits
 * non-zero within `timeoutS` (bash's /dev/tcp, so it works in a bare sandbox too).
 */
export function tcpSend(address: string, port: number, word: string, timeoutS = 3): string[] {
  return [
    "timeout",
    String(timeoutS),
    "bash",
    "-c",
    `exec 3<>/dev/tcp/${address}/${port} && echo ${word} >&3 && exec 3>&-`,
  ];
}
