/**
 * What this worker can do for job networks, found at worker start by doing it once: make one job
 * namespace with its veth and isolation table, then remove it. A host where that fails (not root,
 * a tool missing, nftables refused) reports `isolation: false` and why, and is placed by nobody
 * outside `tandem dev` (src/protocol/cluster-network.ts).
 *
 * The overlay half comes from the WireGuard module's probe (`probeWireguard()`): its answer is
 * passed in as `overlay`, so this file needs nothing of it.
 */
import type { NetworkCapability } from "../../protocol/cluster-network.ts";
import { findExecutable } from "../runtime/launch.ts";
import { createJobNetns } from "./job-netns.ts";

/** The overlay probe's answer (the WireGuard module's `probeWireguard()`). */
export interface OverlayProbe {
  overlay: NetworkCapability["overlay"];
  problems: readonly string[];
}

export interface NetworkCapabilityOptions {
  /** The worker's tag (job-netns.ts): the probe's namespace is named like a job's. */
  workerTag: string;
  /** The overlay's probe result; absent: no overlay (null), no problem reported for it. */
  overlay?: OverlayProbe;
}

const TOOLS = ["ip", "nft", "nsenter", "sysctl"];
const MAX_PROBLEM_CHARS = 300;
const MAX_PROBLEMS = 8;

function describe(error: unknown): string {
  const parts: string[] = [];
  for (let e: unknown = error; e instanceof Error && parts.length < 3; e = e.cause)
    parts.push(e.message);
  return parts.length === 0 ? String(error) : parts.join(": ");
}

/** Tries one job network end to end and answers the worker's NetworkCapability. */
export async function probeNetworkCapability(
  options: NetworkCapabilityOptions,
): Promise<NetworkCapability> {
  const problems: string[] = [];
  if (process.getuid?.() !== 0)
    problems.push("job networks need a root worker (network namespaces, veth, nftables)");
  for (const tool of TOOLS)
    if ((await findExecutable(tool)) === undefined) problems.push(`${tool} is not installed`);
  if (problems.length === 0) {
    try {
      const netns = await createJobNetns({ workerTag: options.workerTag, internet: true });
      await netns.destroy();
    } catch (error) {
      problems.push(`cannot make a job network: ${describe(error)}`);
    }
  }
  const isolation = problems.length === 0;
  problems.push(...(options.overlay?.problems ?? []));
  return {
    isolation,
    overlay: options.overlay?.overlay ?? null,
    problems: problems.slice(0, MAX_PROBLEMS).map((p) => p.slice(0, MAX_PROBLEM_CHARS)),
  };
}
