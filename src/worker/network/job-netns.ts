/**
 * A network namespace per rank (DESIGN.md §3 "job networks", rule 8.5).
 *
 * Made from the worker's own network namespace (the host's, on a real machine), with names that
 * carry the worker's tag so several workers on one host never touch each other's:
 * - namespace `tdm-<tag>-<8 hex>` (under /run/netns), loopback up, IPv6 off;
 * - with `internet: true`, a veth pair: host side `tv<8 hex>` (its alias is the namespace's name,
 *   which is how a sweep finds it), job side `eth0`, on a /30 picked at random in 10.231.0.0/16
 *   among those no local interface uses (the job at .2, its gateway at .1, the default route);
 *   and the isolation table `tdm_<tag>_<8 hex>` (isolation-rules.ts). `internet: false` makes no
 *   veth: only loopback, nothing leaves (the cluster overlay, `tandem0`, is moved in later);
 * - net.ipv4.ip_forward=1 in the worker's namespace, because routing the job's packets out through
 *   NAT needs it (as Docker does); the isolation table decides what may be forwarded.
 *
 * `destroy()` removes the table, the veth and the namespace, and is idempotent; a failed create
 * removes what it made. `sweepJobNetworks(tag)` removes what a previous run of the worker left
 * (a SIGKILLed agent runs no finally).
 */
import { randomBytes, randomInt } from "node:crypto";
import {
  deleteIsolationRules,
  installIsolationRules,
  listInetTables,
  validateIsolationOptions,
} from "./isolation-rules.ts";
import { ip, ipBatch, JobNetworkError, removeIfPresent, sysctl } from "./net-commands.ts";

/** Options of createJobNetns. */
export interface JobNetnsOptions {
  /** Names this worker's namespaces, veths and tables: 1-8 lowercase letters or digits. */
  workerTag: string;
  /** Outbound internet through NAT (a veth and the isolation table); false: loopback only. */
  internet: boolean;
  /** Extra IPv4 addresses or CIDRs the job may not reach (the coordinator's address). */
  blockedCidrs?: readonly string[];
}

/** A job's network namespace. */
export interface JobNetns {
  /** The namespace's name (`tdm-<tag>-<8 hex>`). */
  readonly name: string;
  /** Its path, for `nsenter --net=` and `podman --network ns:`. */
  readonly path: string;
  /** The job's address and its gateway (the host side); absent without internet. */
  readonly link:
    { readonly veth: string; readonly address: string; readonly gateway: string } | undefined;
  /** Removes the namespace, its veth and its rules. Idempotent. */
  destroy(): Promise<void>;
}

const WORKER_TAG = /^[a-z0-9]{1,8}$/;
const SUBNET_BASE = (10 << 24) | (231 << 16);
const SUBNETS = 1 << 14; // /30s in 10.231.0.0/16
/** /30s this process has picked and not yet released (two creates at once never share one). */
const pickedSubnets = new Set<number>();

export const netnsPath = (name: string): string => `/run/netns/${name}`;
const namesOf = (tag: string, hex: string) => ({
  name: `tdm-${tag}-${hex}`,
  veth: `tv${hex}`,
  table: `tdm_${tag}_${hex}`,
});

function dotted(n: number): string {
  return [n >>> 24, (n >>> 16) & 255, (n >>> 8) & 255, n & 255].join(".");
}

function checkTag(tag: string): void {
  if (!WORKER_TAG.test(tag))
    throw new JobNetworkError(
      "INVALID_NETWORK_OPTIONS",
      `worker tag ${JSON.stringify(tag)} must be 1-8 lowercase letters or digits`,
    );
}

/** A /30 of 10.231.0.0/16 no interface here is on (and no other create of this process holds). */
async function pickSubnet(): Promise<number> {
  const used = new Set<number>();
  for (const m of (await ip("-4", "-o", "addr", "show")).matchAll(/inet 10\.231\.(\d+)\.(\d+)/g))
    used.add((Number(m[1]) * 256 + Number(m[2])) >> 2);
  for (let attempt = 0; attempt < 64; attempt++) {
    const index = randomInt(SUBNETS);
    if (used.has(index) || pickedSubnets.has(index)) continue;
    pickedSubnets.add(index);
    return index;
  }
  throw new JobNetworkError("NETWORK_SETUP_FAILED", "no free /30 in 10.231.0.0/16");
}

/** Makes a job's namespace (see the header). Invalid options change nothing. */
export async function createJobNetns(options: JobNetnsOptions): Promise<JobNetns> {
  checkTag(options.workerTag);
  const hex = randomBytes(4).toString("hex");
  const { name, veth, table } = namesOf(options.workerTag, hex);
  const path = netnsPath(name);
  if (options.internet)
    validateIsolationOptions({
      table,
      veth,
      jobAddress: "10.231.0.2",
      ...(options.blockedCidrs === undefined ? {} : { blockedCidrs: options.blockedCidrs }),
    });

  let subnet: number | undefined;
  let link: JobNetns["link"];
  let destroyed: Promise<void> | undefined;
  const destroy = (): Promise<void> => {
    destroyed ??= (async () => {
      const problems: unknown[] = [];
      const attempt = (step: Promise<unknown>) =>
        step.catch((error: unknown) => problems.push(error));
      if (options.internet) {
        await attempt(deleteIsolationRules(table));
        await attempt(removeIfPresent(["ip", "link", "del", veth], /Cannot find device/));
      }
      await attempt(removeIfPresent(["ip", "netns", "del", name], /No such file or directory/));
      if (subnet !== undefined) pickedSubnets.delete(subnet);
      if (problems.length > 0)
        throw new JobNetworkError("NETWORK_CLEANUP_FAILED", `cannot remove all of ${name}`, {
          cause: new AggregateError(problems),
        });
    })();
    return destroyed;
  };
  const handle: JobNetns = {
    name,
    path,
    get link() {
      return link;
    },
    destroy,
  };

  try {
    await ip("netns", "add", name);
    await sysctl(path, "net.ipv6.conf.all.disable_ipv6=1", "net.ipv6.conf.default.disable_ipv6=1");
    if (!options.internet) {
      await ip("-n", name, "link", "set", "lo", "up");
      return handle;
    }

    subnet = await pickSubnet();
    const base = SUBNET_BASE + subnet * 4;
    const gateway = dotted(base + 1);
    const address = dotted(base + 2);
    // Two `ip -batch` runs (this side, then the job's) instead of one process per step: set-up
    // time is mostly process starts (bench/job-networks).
    await ipBatch(undefined, [
      `link add ${veth} type veth peer name eth0 netns ${name}`,
      `link set ${veth} alias ${name}`,
      `addr add ${gateway}/30 dev ${veth}`,
      `link set ${veth} up`,
    ]);
    await ipBatch(name, [
      "link set lo up",
      `addr add ${address}/30 dev eth0`,
      "link set eth0 up",
      `route add default via ${gateway}`,
    ]);
    await installIsolationRules({
      table,
      veth,
      jobAddress: address,
      ...(options.blockedCidrs === undefined ? {} : { blockedCidrs: options.blockedCidrs }),
    });
    // Forwarding is what lets the job's packets leave through NAT (see the header); enabled once
    // the table that filters them exists.
    await sysctl(undefined, `net.ipv6.conf.${veth}.disable_ipv6=1`, "net.ipv4.ip_forward=1");
    link = { veth, address, gateway };
    return handle;
  } catch (error) {
    await destroy().catch(() => undefined);
    if (error instanceof JobNetworkError) throw error;
    throw new JobNetworkError("NETWORK_SETUP_FAILED", `cannot make the job network ${name}`, {
      cause: error,
    });
  }
}

const JOB_NETNS_NAME = /^tdm-([a-z0-9]{1,8})-([0-9a-f]{8})$/;

/**
 * Removes the job network named `name` (its table, veth and namespace) from outside the process
 * that made it: the fencing watchdog does this for a fenced job once its agent is gone. False
 * when `name` is not a job namespace's name; removing what is already gone is no error.
 */
export async function removeJobNetwork(name: string): Promise<boolean> {
  const m = JOB_NETNS_NAME.exec(name);
  if (m === null) return false;
  const { veth, table } = namesOf(m[1]!, m[2]!);
  await deleteIsolationRules(table);
  await removeIfPresent(["ip", "link", "del", veth], /Cannot find device/);
  await removeIfPresent(["ip", "netns", "del", name], /No such file or directory/);
  return true;
}

/** What `sweepJobNetworks` removed. */
export interface SweptJobNetworks {
  namespaces: string[];
  veths: string[];
  tables: string[];
}

/**
 * Removes every namespace, veth and table of this worker tag (a previous run's leftovers); call at
 * worker start, before any job runs.
 */
export async function sweepJobNetworks(workerTag: string): Promise<SweptJobNetworks> {
  checkTag(workerTag);
  const prefix = `tdm-${workerTag}-`;
  const swept: SweptJobNetworks = { namespaces: [], veths: [], tables: [] };
  for (const table of await listInetTables()) {
    if (!table.startsWith(`tdm_${workerTag}_`)) continue;
    if (await deleteIsolationRules(table)) swept.tables.push(table);
  }
  const links = await ip("-o", "link", "show", "type", "veth");
  for (const m of links.matchAll(/^\d+: (tv[0-9a-f]{8})@\S+:.*\\\s+alias (\S+)/gm)) {
    if (!m[2]!.startsWith(prefix)) continue;
    if (await removeIfPresent(["ip", "link", "del", m[1]!], /Cannot find device/))
      swept.veths.push(m[1]!);
  }
  for (const line of (await ip("netns", "list")).split("\n")) {
    const ns = line.split(" ")[0] ?? "";
    if (!ns.startsWith(prefix)) continue;
    if (await removeIfPresent(["ip", "netns", "del", ns], /No such file or directory/))
      swept.namespaces.push(ns);
  }
  return swept;
}
