/**
 * The job runtime port: how the worker starts one process tree for a job and ends it.
 *
 * Three adapters implement it (DESIGN.md §3): `bwrap` (the default, a bubblewrap sandbox),
 * `podman` (OCI images, for `container` clusters) and `process` (a plain child process, only for `tandem dev`
 * on machines without bubblewrap: it isolates nothing). The supervisor talks to this interface
 * only, so tests and callers never depend on which one runs.
 *
 * Contract every adapter keeps:
 * - the job sees exactly `jobEnvironment(spec)`, never the worker's environment;
 * - `exited` settles only once every process of the job is gone (no strays after an end);
 * - `kill()` ends every process of the job, children and grandchildren included, and is idempotent.
 */
import { chmod, chown, lstat, mkdir, open, rm } from "node:fs/promises";
import path from "node:path";
import type { Readable } from "node:stream";
import type { ExceededLimit } from "../../protocol/hardware.ts";

/** Resource limits of one job. Unset means unlimited. */
export interface JobLimits {
  /** CPU time as a number of cores (1.5 = 150 ms of CPU per 100 ms of wall time). */
  cpuCores?: number;
  /** Memory of all the job's processes together, MiB (per process where only rlimits exist). */
  memoryMiB?: number;
  /** Tasks (processes and threads) the job may have at once. */
  maxProcesses?: number;
  /** Open file descriptors per process. */
  maxOpenFiles?: number;
  /** Disk the job dir may hold, MiB (disk-watch.ts: a watcher plus RLIMIT_FSIZE). */
  diskMiB?: number;
}

/**
 * A network namespace made for the job (src/worker/network/job-netns.ts); the job runs inside it
 * and sees only its interfaces (loopback, its NATed `eth0`, the cluster overlay).
 */
export interface JobNamespaceNetwork {
  /** The namespace's path: `/run/netns/<name>`. */
  namespace: string;
  /**
   * Extra /etc/hosts entries, name → IPv4 address: the job's hostname (`tandem-job`) → its overlay
   * address, because engines such as gloo resolve their own hostname to advertise an address.
   */
  hosts?: Record<string, string>;
}

/** One job to start. */
export interface JobSpec {
  /** The job's id (`job_…`); names its cgroup. Letters, digits, `_` and `-` only. */
  jobId: string;
  /** argv; no shell is involved unless the argv itself is `["sh", "-c", …]`. */
  command: readonly string[];
  /**
   * The only environment the job sees, on top of PATH, HOME and LANG defaults it may override
   * (and PWD, which bwrap sets to the job's cwd).
   */
  env: Record<string, string>;
  /** Host path of the job's private work dir; created mode 0700 (sandboxed at /job, its cwd). */
  jobDir: string;
  limits: JobLimits;
  /**
   * "shared": the host's network namespace, which multi-node clusters need to reach their peers;
   * "none": loopback only; a namespace: the job's own network (see JobNamespaceNetwork). See
   * bwrap-runtime.ts for what "shared" exposes.
   */
  network: "shared" | "none" | JobNamespaceNetwork;
  /** Host device nodes to expose read-write (GPU nodes: /dev/nvidia0, /dev/nvidiactl, …). */
  devices?: readonly string[];
  /** The OCI image to run the command in (the podman runtime only; it is required there). */
  image?: string;
  /** Files written into the job dir before the job starts, owned by the job's user. */
  files?: readonly JobFile[];
}

/**
 * A file the worker hands the job (its cluster's TLS material): `path` is relative to the job dir,
 * at least one folder deep, and its folders are created 0700. Whatever a previous attempt left at
 * the top folder of any file is removed first, so nothing the job made (a symlink) can redirect
 * the worker's writes.
 */
export interface JobFile {
  path: string;
  content: string;
  /** Permission bits (0o600 for a key). */
  mode: number;
}

/**
 * How the fencing watchdog (src/worker/fencing) ends a job from outside the agent: SIGKILL of
 * `pid` and its process group, plus `kill` where that alone would not end it (a container), and
 * the removal of its network.
 */
export interface FenceTarget {
  pid: number;
  kill?: readonly string[];
  /**
   * The name of the job's network namespace (job-netns.ts): removed with its veth and rules at the
   * fence, so a job fenced after its agent died leaves no network behind.
   */
  network?: string;
}

/** How a job ended. */
export interface JobExit {
  /** The command's exit status; null when it was ended by a signal. */
  exitCode: number | null;
  /** The ending signal's name ("SIGKILL"); null when it exited by itself. */
  signal: string | null;
  /** True when the kernel's OOM killer ended a process of the job (cgroup limits only). */
  oomKilled: boolean;
  /**
   * The limit a job that did not exit 0 ran into: the OOM killer (memory), a fork refused by its
   * pids cgroup, or its job dir full (disk). Absent when none was hit or the job exited 0.
   */
  limitExceeded?: ExceededLimit;
}

/** How each requested limit is enforced; a limit not asked for has no entry. */
export type LimitEnforcement = "cgroup-v2" | "cgroup-v1" | "rlimit" | "watcher" | "unenforced";
export type LimitsEnforcedBy = Partial<Record<keyof JobLimits, LimitEnforcement>>;

/** A started job. */
export interface RunningJob {
  /** Host pid of the process the runtime spawned (for bwrap: its monitor process). */
  readonly pid: number;
  /**
   * The job's output. Read both: unread output is buffered (from the job's start, so nothing is
   * lost before the caller attaches), and a job blocks on write once its buffer is full.
   */
  readonly stdout: Readable;
  readonly stderr: Readable;
  /**
   * Settles once the command has ended and no process of the job is left. Never rejects. The last
   * output may still be in `stdout`/`stderr` then: read them to their 'end'.
   */
  readonly exited: Promise<JobExit>;
  readonly limitsEnforcedBy: LimitsEnforcedBy;
  /** SIGTERM to every process of the job, SIGKILL to all after `graceMs` (default 5000). */
  kill(graceMs?: number): Promise<void>;
  /** How to end the job from another process; default: SIGKILL `pid` and its process group. */
  readonly fenceTarget?: FenceTarget;
}

/** The port. */
export interface JobRuntime {
  readonly kind: "bwrap" | "process" | "podman";
  /** Resolves once the job's processes exist; rejects (JobRuntimeError) if they could not start. */
  run(spec: JobSpec): Promise<RunningJob>;
}

/**
 * Why a job could not start. `INVALID_JOB_SPEC` (its command or spec) and `IMAGE_MISSING` (an
 * image this node does not hold) are the consumer's; the others are the node's.
 */
export type JobRuntimeErrorCode =
  "INVALID_JOB_SPEC" | "IMAGE_MISSING" | "RUNTIME_UNAVAILABLE" | "JOB_START_FAILED";

/** A job that could not be started, with a stable code. */
export class JobRuntimeError extends Error {
  readonly code: JobRuntimeErrorCode;

  constructor(code: JobRuntimeErrorCode, message: string, options?: { cause: unknown }) {
    super(message, options);
    this.name = "JobRuntimeError";
    this.code = code;
  }
}

export const DEFAULT_KILL_GRACE_MS = 5_000;
const JOB_ID = /^[A-Za-z0-9_-]{1,128}$/;
const ENV_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;
const NETNS_PATH = /^\/run\/netns\/(?!\.\.?$)[A-Za-z0-9_.-]{1,64}$/;
const HOST_NAME =
  /^(?=.{1,253}$)[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$/;
const IPV4 = /^(?:(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)\.){3}(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)$/;
const MAX_HOSTS_ENTRIES = 64;

/** The job's network namespace path, or undefined for "shared" and "none". */
export function jobNetnsPath(spec: Pick<JobSpec, "network">): string | undefined {
  return typeof spec.network === "object" ? spec.network.namespace : undefined;
}

/** Throws INVALID_JOB_SPEC for a spec no runtime may start. */
export function validateJobSpec(spec: JobSpec): void {
  const bad = (message: string): never => {
    throw new JobRuntimeError("INVALID_JOB_SPEC", `job ${JSON.stringify(spec.jobId)}: ${message}`);
  };
  if (!JOB_ID.test(spec.jobId)) bad("jobId must be 1-128 letters, digits, '_' or '-'");
  if (spec.command.length === 0 || spec.command[0] === "") bad("command is empty");
  if (spec.command.some((arg) => arg.includes("\0"))) bad("command contains a NUL byte");
  for (const [name, value] of Object.entries(spec.env)) {
    if (!ENV_NAME.test(name)) bad(`invalid environment variable name ${JSON.stringify(name)}`);
    if (value.includes("\0")) bad(`environment variable ${name} contains a NUL byte`);
  }
  if (!spec.jobDir.startsWith("/")) bad("jobDir must be an absolute path");
  for (const device of spec.devices ?? []) {
    if (!device.startsWith("/dev/") || device.includes(".."))
      bad(`device ${device} is not a /dev path`);
  }
  if (typeof spec.network === "object") {
    if (!NETNS_PATH.test(spec.network.namespace))
      bad("network namespace must be /run/netns/<name>");
    const hosts = Object.entries(spec.network.hosts ?? {});
    if (hosts.length > MAX_HOSTS_ENTRIES) bad(`at most ${MAX_HOSTS_ENTRIES} hosts entries`);
    for (const [name, address] of hosts) {
      if (!HOST_NAME.test(name)) bad(`invalid host name ${JSON.stringify(name)}`);
      if (!IPV4.test(address))
        bad(`host ${name}: ${JSON.stringify(address)} is not an IPv4 address`);
    }
  } else if (spec.network !== "shared" && spec.network !== "none") {
    bad('network must be "shared", "none" or a namespace');
  }
  const { cpuCores, memoryMiB, maxProcesses, maxOpenFiles, diskMiB } = spec.limits;
  if (cpuCores !== undefined && !(cpuCores > 0 && cpuCores <= 4096)) bad("cpuCores out of range");
  for (const [name, value] of Object.entries({ memoryMiB, maxProcesses, maxOpenFiles, diskMiB })) {
    if (value !== undefined && !(Number.isSafeInteger(value) && value > 0)) {
      bad(`${name} must be a positive integer`);
    }
  }
}

/** The job's whole environment: defaults for PATH, HOME and LANG, then `spec.env` on top. */
export function jobEnvironment(spec: JobSpec, home: string): Record<string, string> {
  return {
    PATH: "/usr/local/bin:/usr/bin:/bin",
    HOME: home,
    LANG: "C.UTF-8",
    ...spec.env,
  };
}

/**
 * Creates the job dir mode 0700, owned by `owner` when given. Missing parents are created 0711:
 * a sandbox user may pass through them (sandbox-user.ts) but not list them.
 */
export async function prepareJobDir(
  jobDir: string,
  owner?: { uid: number; gid: number },
  files: readonly JobFile[] = [],
): Promise<void> {
  await mkdir(path.dirname(jobDir), { recursive: true, mode: 0o711 });
  await mkdir(jobDir, { recursive: true, mode: 0o700 });
  await chmod(jobDir, 0o700);
  if (owner !== undefined) await chown(jobDir, owner.uid, owner.gid);
  const parts = files.map((file) => file.path.split("/"));
  if (
    parts.some(
      (p) => p.length < 2 || p.some((part) => part === "" || part === "." || part === ".."),
    )
  )
    throw new JobRuntimeError(
      "JOB_START_FAILED",
      "a job file's path must be a/b…, inside the job dir",
    );
  // No job process runs now (a previous attempt ended before this one starts): removing the top
  // folders and making every folder afresh (never following a link) leaves no path the job chose.
  for (const top of new Set(parts.map((p) => p[0]!)))
    await rm(path.join(jobDir, top), { recursive: true, force: true });
  for (const file of files) await writeJobFile(jobDir, file, owner);
}

/** Where the job sees its job dir: /job in a sandbox or a container, the host path otherwise. */
export function jobDirInside(runtime: JobRuntime["kind"], jobDir: string): string {
  return runtime === "process" ? jobDir : "/job";
}

async function writeJobFile(
  jobDir: string,
  file: JobFile,
  owner: { uid: number; gid: number } | undefined,
): Promise<void> {
  let dir = jobDir;
  for (const part of file.path.split("/").slice(0, -1)) {
    dir = path.join(dir, part);
    await mkdir(dir, { mode: 0o700 }).catch((error: unknown) => {
      if ((error as NodeJS.ErrnoException).code !== "EEXIST") throw error;
    });
    const stat = await lstat(dir);
    if (!stat.isDirectory())
      throw new JobRuntimeError("JOB_START_FAILED", `job file folder ${dir} is not a folder`);
    if (owner !== undefined) await chown(dir, owner.uid, owner.gid);
  }
  const handle = await open(path.join(jobDir, file.path), "wx", file.mode);
  try {
    await handle.writeFile(file.content);
    await handle.chmod(file.mode);
    if (owner !== undefined) await handle.chown(owner.uid, owner.gid);
  } finally {
    await handle.close();
  }
}
