/**
 * What both runtimes put in front of the job's command: the launch chain and the limits plan.
 *
 * Launch chain: a shell closes inherited descriptors, joins the job's cgroups by writing its own pid
 * (`$$`) to each cgroup.procs and execs `prlimit`, which sets the rlimits on itself, then (root
 * worker, sandboxed job) `setpriv`, which drops to the job's unprivileged host uid, then the
 * command. Joining before exec means the job cannot fork anything outside its cgroup; a
 * spawn-then-move would race.
 *
 * Rlimits are the fallback where a cgroup limit cannot be set, and they are weaker:
 * - memory → RLIMIT_DATA, per process (heap and private mappings, not file mappings): a job of N
 *   processes may use N times the limit; an allocation past it fails (MemoryError) instead of the
 *   kernel's OOM kill;
 * - processes → RLIMIT_NPROC, which counts every task of the host uid (all jobs and the worker when
 *   they share it) and is not enforced for a root worker (its tasks run as host root);
 * - CPU cores have no rlimit: "unenforced" (as is any rlimit where `prlimit` is missing);
 * - open files are always RLIMIT_NOFILE (no cgroup controller exists for them);
 * - disk is a watcher of the job dir (disk-watch.ts), with RLIMIT_FSIZE at the same size so that no
 *   single file passes it between two samples.
 */
import { access, constants } from "node:fs/promises";
import path from "node:path";
import type { LimitController } from "./cgroup-detect.ts";
import type { JobCgroup } from "./job-cgroup.ts";
import { JobRuntimeError, type JobLimits, type LimitsEnforcedBy } from "./job-runtime.ts";

const MIB = 1024 * 1024;
const LAUNCH = [
  "keep=$1; n=$2; shift 2",
  'for f in /proc/self/fd/*; do fd=${f##*/}; if [ "$fd" -ge "$keep" ] && [ ${#fd} -eq 1 -o -n "$BASH" ]; then eval "exec $fd>&-"; fi; done',
  'while [ "$n" -gt 0 ]; do echo $$ > "$1" || exit 125; shift; n=$((n-1)); done',
  'exec "$@"',
].join("\n");

/** How each limit is enforced, and the prlimit options for those a cgroup does not cover. */
export function planLimits(
  limits: JobLimits,
  cgroup: JobCgroup | undefined,
  options: { nprocEnforced: boolean; prlimit: boolean },
): { enforcedBy: LimitsEnforcedBy; prlimitArgs: string[] } {
  const byCgroup = (c: LimitController) => cgroup?.enforcedBy[c];
  const rlimit = options.prlimit ? "rlimit" : "unenforced";
  const enforcedBy: LimitsEnforcedBy = {};
  const prlimitArgs: string[] = [];
  if (limits.memoryMiB !== undefined) {
    enforcedBy.memoryMiB = byCgroup("memory") ?? rlimit;
    const bytes = limits.memoryMiB * MIB;
    if (enforcedBy.memoryMiB === "rlimit") prlimitArgs.push(`--data=${bytes}:${bytes}`);
  }
  if (limits.cpuCores !== undefined) enforcedBy.cpuCores = byCgroup("cpu") ?? "unenforced";
  if (limits.maxProcesses !== undefined) {
    const n = limits.maxProcesses;
    enforcedBy.maxProcesses = byCgroup("pids") ?? (options.nprocEnforced ? rlimit : "unenforced");
    if (enforcedBy.maxProcesses === "rlimit") prlimitArgs.push(`--nproc=${n}:${n}`);
  }
  if (limits.maxOpenFiles !== undefined) {
    enforcedBy.maxOpenFiles = rlimit;
    if (rlimit === "rlimit")
      prlimitArgs.push(`--nofile=${limits.maxOpenFiles}:${limits.maxOpenFiles}`);
  }
  if (limits.diskMiB !== undefined) {
    enforcedBy.diskMiB = "watcher";
    if (options.prlimit)
      prlimitArgs.push(`--fsize=${limits.diskMiB * MIB}:${limits.diskMiB * MIB}`);
  }
  return { enforcedBy, prlimitArgs };
}

/**
 * The argv that closes inherited descriptors from `keepFds` up, joins `procsFiles`, applies
 * `prlimitArgs`, then execs `command`. Closing matters: neither Node nor bwrap closes descriptors
 * the worker inherited without close-on-exec, and a leaked directory descriptor would let a job
 * `openat(fd, "..")` its way out of the sandbox's mount namespace. `shell` is bash where it exists:
 * dash cannot name descriptors above 9, so with dash only 3-9 are closed.
 */
export function launchArgv(options: {
  tools: LaunchTools;
  keepFds: number;
  procsFiles: readonly string[];
  prlimitArgs: readonly string[];
  /** Host uid/gid to switch to (needs `tools.setpriv`); the worker's own when unset. */
  runAs?: { uid: number; gid: number };
  command: readonly string[];
}): string[] {
  const { tools, keepFds, procsFiles, prlimitArgs, runAs, command } = options;
  const limit =
    prlimitArgs.length === 0 || tools.prlimit === undefined
      ? []
      : [tools.prlimit, ...prlimitArgs, "--"];
  if (runAs !== undefined && tools.setpriv === undefined) throw new Error("setpriv is missing");
  const drop =
    runAs === undefined || tools.setpriv === undefined
      ? []
      : [
          tools.setpriv,
          `--reuid=${runAs.uid}`,
          `--regid=${runAs.gid}`,
          "--clear-groups",
          "--no-new-privs",
          "--",
        ];
  return [
    tools.shell,
    "-c",
    LAUNCH,
    "tandem-launch",
    String(keepFds),
    String(procsFiles.length),
    ...procsFiles,
    ...limit,
    ...drop,
    ...command,
  ];
}

/** One line for the worker's log saying how the job's limits are enforced. */
export function describeEnforcement(enforcedBy: LimitsEnforcedBy): string {
  const parts = Object.entries(enforcedBy).map(([limit, how]) => `${limit}=${how}`);
  return parts.length === 0 ? "no limits requested" : parts.join(" ");
}

/** Host programs of the launch chain, by absolute path (the job's PATH is not used for them). */
export interface LaunchTools {
  /** bash where it exists (it can close every inherited descriptor), else /bin/sh. */
  shell: string;
  /** util-linux prlimit; undefined where missing (rlimits are then unenforced). */
  prlimit: string | undefined;
  /** coreutils env, to hand the process runtime's job exactly its environment. */
  env: string;
  /** util-linux setpriv, for a root worker to start sandboxes as an unprivileged uid. */
  setpriv: string | undefined;
  /** util-linux nsenter, to start a job inside its network namespace (a root worker). */
  nsenter: string | undefined;
}

/**
 * What goes in front of a launch chain to run it in the network namespace at `netnsPath`:
 * `nsenter --net=<path> --`, which enters it and execs the rest (same pid, same descriptors).
 * Nothing when there is no namespace.
 */
export function enterNetworkArgv(tools: LaunchTools, netnsPath: string | undefined): string[] {
  if (netnsPath === undefined) return [];
  if (tools.nsenter === undefined)
    throw new JobRuntimeError(
      "RUNTIME_UNAVAILABLE",
      "nsenter (util-linux) is missing: it starts jobs in their network",
    );
  return [tools.nsenter, `--net=${netnsPath}`, "--"];
}

/** PATH searched for the launch tools and bwrap on the host side; the job never sees it. */
export const HOST_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/** The absolute path of `name` on HOST_PATH (or `name` itself when it has a slash), if executable. */
export async function findExecutable(name: string): Promise<string | undefined> {
  const candidates = name.includes("/")
    ? [name]
    : HOST_PATH.split(":").map((d) => path.join(d, name));
  for (const candidate of candidates) {
    const ok = await access(candidate, constants.X_OK).then(
      () => true,
      () => false,
    );
    if (ok) return candidate;
  }
  return undefined;
}

export async function detectLaunchTools(): Promise<LaunchTools> {
  const [bash, prlimit, env, setpriv, nsenter] = await Promise.all([
    findExecutable("/bin/bash"),
    findExecutable("prlimit"),
    findExecutable("env"),
    findExecutable("setpriv"),
    findExecutable("nsenter"),
  ]);
  return { shell: bash ?? "/bin/sh", prlimit, env: env ?? "/usr/bin/env", setpriv, nsenter };
}
