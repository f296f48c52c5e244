/**
 * Job networks for one worker, set up at its start: the worker's tag, a sweep of what its previous
 * run left, the capability probe, and the port the supervisor makes each rank's namespace through
 * (with the coordinator's addresses always blocked).
 */
import { createHash } from "node:crypto";
import { lookup } from "node:dns/promises";
import net from "node:net";
import path from "node:path";
import type { JobNetworkSpec, NetworkCapability } from "../../protocol/cluster-network.ts";
import { createJobNetns, sweepJobNetworks, type JobNetns } from "./job-netns.ts";
import { probeNetworkCapability, type OverlayProbe } from "./network-capability.ts";

/** The port the supervisor makes rank networks through. */
export interface JobNetworks {
  create(spec: JobNetworkSpec): Promise<JobNetns>;
}

export interface JobNetworksSetup {
  capability: NetworkCapability;
  /** Undefined when this worker cannot isolate (capability.problems says why). */
  jobNetworks: JobNetworks | undefined;
  workerTag: string;
}

/**
 * A worker's tag: 8 hex digits of its home directory's path, so the same install finds its own
 * leftovers after a restart and two workers on one host never share one.
 */
export function workerTagOf(home: string): string {
  return createHash("sha256").update(path.resolve(home)).digest("hex").slice(0, 8);
}

/** The coordinator replicas' IPv4 addresses as /32s (names are resolved once, at start). */
async function coordinatorCidrs(coordinatorUrls: readonly string[]): Promise<string[]> {
  const cidrs = await Promise.all(
    coordinatorUrls.map(async (coordinatorUrl) => {
      const host = new URL(coordinatorUrl).hostname.replace(/^\[|\]$/g, "");
      if (net.isIPv4(host)) return [`${host}/32`];
      if (net.isIPv6(host)) return []; // a job has no IPv6 at all
      const addresses = await lookup(host, { all: true, family: 4 }).catch(() => []);
      return addresses.map((a) => `${a.address}/32`);
    }),
  );
  return [...new Set(cidrs.flat())];
}

export async function setUpJobNetworks(options: {
  home: string;
  /** Every coordinator replica the worker may connect to: no job reaches any of them. */
  coordinatorUrls: readonly string[];
  /** The WireGuard module's probe answer (network-capability.ts). */
  overlay?: OverlayProbe;
  log: (message: string, fields?: Record<string, unknown>) => void;
}): Promise<JobNetworksSetup> {
  const workerTag = workerTagOf(options.home);
  if (process.getuid?.() === 0) {
    const swept = await sweepJobNetworks(workerTag).catch((error: unknown) => {
      options.log("job network sweep failed", { error: String(error) });
      return undefined;
    });
    if (
      swept !== undefined &&
      swept.namespaces.length + swept.veths.length + swept.tables.length > 0
    )
      options.log("removed job networks a previous run left", { ...swept });
  }
  const capability = await probeNetworkCapability({
    workerTag,
    ...(options.overlay === undefined ? {} : { overlay: options.overlay }),
  });
  options.log("job networks", { workerTag, ...capability });
  if (!capability.isolation) return { capability, jobNetworks: undefined, workerTag };
  const blockedCidrs = await coordinatorCidrs(options.coordinatorUrls);
  return {
    capability,
    workerTag,
    jobNetworks: {
      create: (spec) => createJobNetns({ workerTag, internet: spec.internet, blockedCidrs }),
    },
  };
}
