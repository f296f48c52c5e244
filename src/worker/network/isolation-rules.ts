/**
 * The firewall of one job namespace: one nftables table (family inet) in the worker's namespace,
 * named after the job's namespace, so deleting that table removes every rule at once.
 *
 * Traffic from the job's veth (host side `tv<hex>`):
 * - to the host itself (input hook): dropped. The job never reaches the host's addresses, its
 *   gateway, the worker's ports or anything bound on the host's loopback;
 * - IPv6: dropped (the job namespace has IPv6 disabled too; this covers link-local tricks);
 * - forwarded to a blocked destination: dropped. Loopback, private (RFC 1918), shared (100.64/10),
 *   link-local (169.254/16, cloud metadata), multicast and reserved ranges, plus the caller's
 *   extra CIDRs (the coordinator's address): the supplier's LAN and services stay out of reach;
 * - forwarded to another job veth (`tv*`): dropped (another cluster on this host);
 * - from a source other than the job's own address: dropped (no spoofing);
 * - the rest is masqueraded behind the host's address (outbound internet).
 * Traffic to the job's veth: only replies (conntrack established/related); nothing can open a
 * connection into the job from outside its namespace.
 */
import { JobNetworkError, removeIfPresent, runCommand } from "./net-commands.ts";

/** Destinations a job never reaches through its NAT, whatever the caller adds. */
export const BLOCKED_DESTINATIONS: readonly string[] = [
  "0.0.0.0/8",
  "10.0.0.0/8",
  "100.64.0.0/10",
  "127.0.0.0/8",
  "169.254.0.0/16",
  "172.16.0.0/12",
  "192.168.0.0/16",
  "224.0.0.0/4",
  "240.0.0.0/4",
];

const IPV4_CIDR =
  /^(?:(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)\.){3}(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)(?:\/(?:3[0-2]|[12]?\d))?$/;
/** nftables identifiers we create: letters, digits, `_`. */
const TABLE_NAME = /^[A-Za-z][A-Za-z0-9_]{0,63}$/;
const INTERFACE_NAME = /^[A-Za-z0-9_-]{1,15}$/;

/** What the table of one job is built from. */
export interface IsolationRulesOptions {
  /** The table's name (letters, digits, `_`). */
  table: string;
  /** The host side of the job's veth. */
  veth: string;
  /** The job's own address (its eth0). */
  jobAddress: string;
  /** Extra IPv4 addresses or CIDRs the job may not reach (the coordinator's). */
  blockedCidrs?: readonly string[];
}

/** Throws INVALID_NETWORK_OPTIONS for options no table may be built from. */
export function validateIsolationOptions(options: IsolationRulesOptions): void {
  const bad = (message: string): never => {
    throw new JobNetworkError("INVALID_NETWORK_OPTIONS", message);
  };
  if (!TABLE_NAME.test(options.table)) bad(`invalid table name ${JSON.stringify(options.table)}`);
  if (!INTERFACE_NAME.test(options.veth)) bad(`invalid interface ${JSON.stringify(options.veth)}`);
  if (!IPV4_CIDR.test(options.jobAddress) || options.jobAddress.includes("/"))
    bad(`invalid job address ${JSON.stringify(options.jobAddress)}`);
  for (const cidr of options.blockedCidrs ?? [])
    if (!IPV4_CIDR.test(cidr)) bad(`blocked destination ${JSON.stringify(cidr)} is not IPv4/CIDR`);
}

/** The table as `nft -f` reads it. */
export function isolationRuleset(options: IsolationRulesOptions): string {
  validateIsolationOptions(options);
  const { table, veth, jobAddress } = options;
  const blocked = [...BLOCKED_DESTINATIONS, ...(options.blockedCidrs ?? [])].join(", ");
  return `table inet ${table} {
  set blocked {
    type ipv4_addr; flags interval; auto-merge;
    elements = { ${blocked} }
  }
  chain input {
    type filter hook input priority -10; policy accept;
    iifname "${veth}" drop
  }
  chain forward {
    type filter hook forward priority -10; policy accept;
    iifname "${veth}" jump from_job
    oifname "${veth}" jump to_job
  }
  chain from_job {
    meta nfproto ipv6 drop
    oifname "tv*" drop
    ip saddr != ${jobAddress} drop
    ip daddr @blocked drop
  }
  chain to_job {
    ct state established,related accept
    drop
  }
  chain postrouting {
    type nat hook postrouting priority 100; policy accept;
    iifname "${veth}" ip saddr ${jobAddress} masquerade
  }
}
`;
}

/** Installs the table in the worker's namespace (atomically: all of it or nothing). */
export async function installIsolationRules(options: IsolationRulesOptions): Promise<void> {
  const ruleset = isolationRuleset(options);
  try {
    await runCommand(["nft", "-f", "-"], ruleset);
  } catch (error) {
    throw new JobNetworkError(
      "NETWORK_SETUP_FAILED",
      `cannot install the isolation rules of ${options.table}`,
      { cause: error },
    );
  }
}

/** Deletes the table; false when it did not exist. */
export function deleteIsolationRules(table: string): Promise<boolean> {
  if (!TABLE_NAME.test(table))
    throw new JobNetworkError(
      "INVALID_NETWORK_OPTIONS",
      `invalid table name ${JSON.stringify(table)}`,
    );
  return removeIfPresent(["nft", "delete", "table", "inet", table], /No such file or directory/);
}

/** The names of the inet tables in the worker's namespace. */
export async function listInetTables(): Promise<string[]> {
  const out = await runCommand(["nft", "list", "tables", "inet"]);
  return [...out.matchAll(/^table inet (\S+)$/gm)].map((m) => m[1]!);
}
