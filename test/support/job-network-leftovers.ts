/**
 * What is left of clusters' networks on a simulated host (hosts.ts) that runs one worker: the
 * checks of issue 14 "nothing of one cluster's network survives its lease".
 *
 * On a host whose one worker has tag `workerTag` (job-networks.ts `workerTagOf`), a piece of a job
 * network is:
 * - a job namespace `tdm-<tag>-…` in /run/netns (the hosts share the test's mount namespace);
 * - in the host's namespace: a `tv…` veth, a `tandem0` or a `tdm<12 hex>` WireGuard device not
 *   yet moved, an nftables table `tdm…`;
 * - a wireguard-go process whose network namespace is the host's (the overlay's UDP side lives
 *   there), or the control socket /var/run/wireguard/<device>.sock of a device seen earlier;
 * - a process still inside a job namespace seen earlier: it keeps the namespace, and its `tandem0`,
 *   alive after the namespace's name is gone.
 *
 * While a cluster runs the same checks find its pieces, which proves they look in the right places;
 * `SeenNetworks` remembers what they found (device names, namespace inodes) for the later checks.
 */
import { execFile } from "node:child_process";
import { readdir, readFile, readlink, stat } from "node:fs/promises";
import { promisify } from "node:util";
import type { Hosts, SimulatedHost } from "./hosts.ts";

const run = promisify(execFile);

/** What the checks of one host have seen so far (filled by `hostNetworkPieces`). */
export interface SeenNetworks {
  /** WireGuard device names (their sockets must be gone at the end). */
  devices: Set<string>;
  /** Job namespaces by inode (`net:[inode]`): no process may stay in one. */
  namespaces: Map<string, string>;
}

export const seenNetworks = (): SeenNetworks => ({ devices: new Set(), namespaces: new Map() });

interface ProcessNetns {
  pid: number;
  argv: string[];
  /** `net:[inode]`. */
  netns: string;
  /** Its parent's pid (0 when unknown). */
  parent: number;
}

async function processes(): Promise<ProcessNetns[]> {
  const found: ProcessNetns[] = [];
  for (const entry of await readdir("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    const [netns, cmdline, status] = await Promise.all([
      readlink(`/proc/${entry}/ns/net`).catch(() => ""),
      readFile(`/proc/${entry}/cmdline`, "utf8").catch(() => ""),
      readFile(`/proc/${entry}/status`, "utf8").catch(() => ""),
    ]);
    if (netns === "") continue; // gone meanwhile, or a kernel thread
    found.push({
      pid: Number(entry),
      argv: cmdline.split("\0").filter((a) => a !== ""),
      netns,
      parent: Number(/^PPid:\s+(\d+)/m.exec(status)?.[1] ?? 0),
    });
  }
  return found;
}

const netnsId = async (path: string) => `net:[${(await stat(path)).ino}]`;

const exists = (file: string) =>
  stat(file).then(
    () => true,
    () => false,
  );

/**
 * Every piece of a job network on `host`, whose worker is tagged `workerTag`, one line each (see
 * the header); records what it finds in `seen`.
 */
export async function hostNetworkPieces(
  hosts: Hosts,
  host: SimulatedHost,
  workerTag: string,
  seen: SeenNetworks,
): Promise<string[]> {
  const [namespaces, links, tables, all, hostNetns] = await Promise.all([
    run("ip", ["netns", "list"]).then((r) => r.stdout),
    hosts.exec(host, ["ip", "-o", "link", "show"]).then((r) => r.stdout),
    hosts.exec(host, ["nft", "list", "tables"]).then((r) => r.stdout),
    processes(),
    netnsId(`/run/netns/${host.namespace}`),
  ]);
  const named = namespaces.split("\n").map((line) => line.split(" ")[0] ?? "");
  const jobNamespaces = named.filter((name) => name.startsWith(`tdm-${workerTag}-`));
  // The kernel reuses a freed namespace's inode number for the next namespace made: one seen here
  // before, now named otherwise (say, the job network of the rank that moved away from this
  // host), holds another job's processes, not this host's leftovers.
  for (const name of named.filter((n) => n.startsWith("tdm-"))) {
    const id = await netnsId(`/run/netns/${name}`).catch(() => undefined);
    if (id === undefined) continue;
    if (jobNamespaces.includes(name)) seen.namespaces.set(id, name);
    else seen.namespaces.delete(id);
  }
  const wireguard = all.filter(
    (p) =>
      p.netns === hostNetns &&
      p.argv.some((a) => a.endsWith("wireguard-go")) &&
      !/(setpriv|nsenter)$/.test(p.argv[0] ?? ""), // about to exec wireguard-go
  );
  for (const p of wireguard) seen.devices.add(p.argv.at(-1) ?? "");
  const pieces = [
    ...jobNamespaces.map((name) => `namespace ${name}`),
    ...[...links.matchAll(/^\d+: (tv[0-9a-f]{8}|tandem0|tdm[0-9a-f]{12})[@:]/gm)].map(
      (m) => `link ${m[1]}`,
    ),
    ...[...tables.matchAll(/^table (\S+) (tdm\S*)$/gm)].map((m) => `table ${m[1]} ${m[2]}`),
    ...wireguard.map((p) => `wireguard-go ${p.pid} ${p.argv.at(-1)}`),
    ...all
      .filter((p) => seen.namespaces.has(p.netns))
      .map(
        (p) =>
          `process ${p.pid} (parent ${p.parent}) in ${seen.namespaces.get(p.netns)}: ${p.argv.join(" ")}`,
      ),
  ];
  for (const device of seen.devices)
    if (await exists(`/var/run/wireguard/${device}.sock`))
      pieces.push(`socket /var/run/wireguard/${device}.sock`);
  return pieces;
}
