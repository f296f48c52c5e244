/**
 * The default job runtime: each job in a bubblewrap sandbox (see bwrap-args.ts for its filesystem).
 *
 * Isolation, and what each part buys:
 * - new user namespace, uid/gid 1000 inside, no capabilities, nested user namespaces disabled;
 * - new pid namespace: the job sees only its processes; bwrap's reaper is its pid 1, and
 *   --die-with-parent ties that reaper to bwrap's monitor, and the monitor to the worker: when the
 *   command exits, or the monitor is killed, or the worker dies, the kernel SIGKILLs every process
 *   of the namespace. No job process outlives its job, whatever it forks or double-forks;
 * - new ipc, uts, mount and cgroup namespaces; --clearenv, then only the job's environment;
 * - limits by cgroup where a tree is writable (job-cgroup.ts), rlimits otherwise (launch.ts); each
 *   job reports which in `limitsEnforcedBy` and one log line.
 *
 * Network trade-off: "none" leaves the job only its own loopback. "shared" keeps the host's network
 * namespace (--share-net), which a multi-node cluster needs so ranks can reach each other and their
 * rendezvous port. The price: the job can reach everything the host can — services bound to the
 * host's 127.0.0.1 (a local coordinator, PostgreSQL, the worker's own ports), abstract unix sockets,
 * the LAN — and can listen on any free port >= 1024 of every host address. Jobs that need no peers
 * should use "none"; a per-cluster network namespace with a routed veth is the stronger design
 * (it needs root on the host) and is left for later.
 *
 * - never host root: a root worker starts each sandbox as its own unprivileged host uid
 *   (sandbox-user.ts explains the measured reason and the job-dir permission it costs).
 *
 * - /job holds at most `limits.diskMiB` (disk-watch.ts: a watcher of the job dir, RLIMIT_FSIZE per file).
 *
 * Not covered: no seccomp filter (the full syscall surface of the kernel, minus what an
 * unprivileged user namespace forbids).
 */
import { spawn } from "node:child_process";
import os from "node:os";
import type { Readable, Writable } from "node:stream";
import {
  bwrapArgs,
  detectHostLayout,
  generatedEtc,
  SANDBOX_JOB_DIR,
  type HostLayout,
} from "./bwrap-args.ts";
import { detectCgroupHierarchies, type CgroupHierarchy } from "./cgroup-detect.ts";
import {
  createJobCgroup,
  enableV2Controllers,
  jobCgroupName,
  sweepStaleCgroups,
} from "./job-cgroup.ts";
import {
  jobEnvironment,
  jobNetnsPath,
  JobRuntimeError,
  prepareJobDir,
  validateJobSpec,
  type JobRuntime,
  type JobSpec,
  type RunningJob,
} from "./job-runtime.ts";
import {
  describeEnforcement,
  detectLaunchTools,
  enterNetworkArgv,
  HOST_PATH,
  launchArgv,
  planLimits,
  type LaunchTools,
} from "./launch.ts";
import { killUntilEmpty, pidNamespaceMembers, signalQuietly } from "./processes.ts";
import {
  followStatus,
  readRest,
  startShim,
  startSignal,
  type SandboxStatus,
} from "./sandbox-status.ts";
import { assertTraversable, SandboxUids, type SandboxUidRange } from "./sandbox-user.ts";
import { diskWatch, superviseJob } from "./supervise.ts";

/** Options of `createBwrapRuntime`. */
export interface BwrapRuntimeOptions {
  /** bwrap executable (name on PATH or path). Default "bwrap". */
  bwrap?: string;
  /** "auto" (default): cgroup limits where writable, rlimits otherwise. "rlimit": rlimits only. */
  limits?: "auto" | "rlimit";
  /** Size cap of each of the job's /tmp and /dev/shm, MiB. Default 1024. */
  tmpfsSizeMiB?: number;
  /** Host uids for a root worker's sandboxes. Default 1,500,000,000 + 0…99,999,999. */
  sandboxUids?: SandboxUidRange;
  /** Receives one line per job on how its limits are enforced, and cleanup problems. */
  log?: (message: string, fields?: Record<string, unknown>) => void;
}

const STATUS_FD = 3;
/**
 * bwrap reads its options from this fd (--args), so the job's environment values never appear in
 * a command line: /proc/<pid>/cmdline of bwrap is readable by every host user, and by the job.
 */
const ARGS_FD = 4;
const START_FD = 5;
const FIRST_DATA_FD = 6;

interface HostFacts {
  layout: HostLayout;
  hierarchies: CgroupHierarchy[];
  tools: LaunchTools;
}

async function detectHost(
  limits: "auto" | "rlimit",
  log: NonNullable<BwrapRuntimeOptions["log"]>,
): Promise<HostFacts> {
  const layout = await detectHostLayout(os.hostname());
  const tools = await detectLaunchTools();
  if (limits === "rlimit") return { layout, hierarchies: [], tools };
  const hierarchies = await detectCgroupHierarchies();
  await sweepStaleCgroups(hierarchies, log);
  const enabled = await Promise.all(
    hierarchies.map(async (h) => {
      if (h.version === 1 || h.controllers.length === 0) return h;
      return { ...h, controllers: await enableV2Controllers(h, h.controllers, log) };
    }),
  );
  return { layout, hierarchies: enabled, tools };
}

export function createBwrapRuntime(
  options: BwrapRuntimeOptions = {},
): JobRuntime & { kind: "bwrap" } {
  const log = options.log ?? (() => undefined);
  const limitsMode = options.limits ?? "auto";
  const asRoot = process.getuid?.() === 0;
  const uids = new SandboxUids(options.sandboxUids);
  let facts: Promise<HostFacts> | undefined;

  async function run(spec: JobSpec): Promise<RunningJob> {
    validateJobSpec(spec);
    facts ??= detectHost(limitsMode, log);
    const { layout, hierarchies, tools } = await facts;
    if (asRoot && tools.setpriv === undefined) {
      throw new JobRuntimeError(
        "RUNTIME_UNAVAILABLE",
        "a root worker needs setpriv (util-linux) to drop sandboxes to an unprivileged uid",
      );
    }
    const uid = asRoot ? uids.acquire(spec.jobId) : undefined;
    try {
      return await start(spec, { layout, hierarchies, tools }, uid);
    } catch (error) {
      if (uid !== undefined) uids.release(uid);
      throw error;
    }
  }

  async function start(
    spec: JobSpec,
    host: HostFacts,
    uid: number | undefined,
  ): Promise<RunningJob> {
    const runAs = uid === undefined ? undefined : { uid, gid: uid };
    await prepareJobDir(spec.jobDir, runAs, spec.files);
    if (runAs !== undefined) await assertTraversable(spec.jobDir, runAs.uid);
    const cgroup =
      host.hierarchies.length === 0
        ? undefined
        : await createJobCgroup({
            hierarchies: host.hierarchies,
            name: jobCgroupName(spec.jobId),
            limits: spec.limits,
            log,
          });
    // RLIMIT_NPROC counts the tasks of the job's host uid: its own uid here when the worker is root.
    const plan = planLimits(spec.limits, cgroup, {
      nprocEnforced: true,
      prlimit: host.tools.prlimit !== undefined,
    });
    log(`job ${spec.jobId} limits: ${describeEnforcement(plan.enforcedBy)}`, {
      jobId: spec.jobId,
      limitsEnforcedBy: plan.enforcedBy,
      ...(runAs === undefined ? {} : { hostUid: runAs.uid }),
    });

    const etc = Object.entries(generatedEtc(spec.network, host.layout.nameservers));
    const args = bwrapArgs({
      layout: host.layout,
      network: spec.network,
      env: jobEnvironment(spec, SANDBOX_JOB_DIR),
      jobDir: spec.jobDir,
      devices: spec.devices ?? [],
      tmpfsSizeMiB: options.tmpfsSizeMiB ?? 1024,
      statusFd: STATUS_FD,
      dataFds: new Map(etc.map(([path], i) => [path, FIRST_DATA_FD + i])),
    });
    const argv = [
      ...enterNetworkArgv(host.tools, jobNetnsPath(spec)),
      ...launchArgv({
        tools: host.tools,
        keepFds: FIRST_DATA_FD + etc.length,
        procsFiles: cgroup?.procsFiles ?? [],
        prlimitArgs: plan.prlimitArgs,
        ...(runAs === undefined ? {} : { runAs }),
        command: [
          options.bwrap ?? "bwrap",
          "--args",
          String(ARGS_FD),
          "--",
          ...startShim(START_FD),
          ...spec.command,
        ],
      }),
    ];
    const child = spawn(argv[0]!, argv.slice(1), {
      stdio: ["ignore", "pipe", "pipe", "pipe", "pipe", "pipe", ...etc.map(() => "pipe" as const)],
      env: { PATH: HOST_PATH },
      cwd: "/",
    });
    const pipes = child.stdio as unknown as ReadonlyArray<Readable & Writable>;
    const spawned = new Promise<unknown>((resolve) => {
      child.once("spawn", () => resolve(undefined));
      child.once("error", (error) => resolve(error));
    });
    const feed = (fd: number, content: string): void => {
      const pipe = pipes[fd]!;
      // A failed start closes these unread (ECONNRESET, EPIPE); the start pipe reports it.
      pipe.on("error", (error: NodeJS.ErrnoException) => {
        if (error.code !== "ECONNRESET" && error.code !== "EPIPE")
          log("bwrap input pipe failed", { fd, error: String(error) });
      });
      pipe.end(content);
    };
    feed(ARGS_FD, args.map((a) => `${a}\0`).join(""));
    etc.forEach(([, content], i) => feed(FIRST_DATA_FD + i, content));
    const status: SandboxStatus = {};
    const statusRead = followStatus(pipes[STATUS_FD]!, status);
    const started = startSignal(pipes[START_FD]!);

    const spawnError = await spawned;
    if (spawnError !== undefined || child.pid === undefined) {
      await cgroup?.remove();
      throw new JobRuntimeError(
        "JOB_START_FAILED",
        `could not start ${argv[0]}: ${String(spawnError)}`,
        { cause: spawnError },
      );
    }
    /**
     * The job's host processes. Its cgroup holds exactly those of the launch chain (bwrap's monitor
     * outside the sandbox, the reaper, the job's), and reading it is one file; without one, the
     * members of its pid namespace, which costs a link read per process on the host.
     */
    const jobProcesses = async (): Promise<number[]> => {
      if (cgroup !== undefined) return cgroup.members();
      return status.pidNamespace === undefined ? [] : pidNamespaceMembers(status.pidNamespace);
    };
    const job = superviseJob({
      disk: diskWatch(spec),
      child: child as typeof child & { pid: number },
      cgroup,
      limitsEnforcedBy: plan.enforcedBy,
      log,
      async terminate() {
        for (const pid of await jobProcesses()) {
          if (pid !== status.reaperPid && pid !== child.pid) signalQuietly(pid, "SIGTERM");
        }
      },
      forceKill() {
        signalQuietly(child.pid!, "SIGKILL");
        if (status.reaperPid !== undefined) signalQuietly(status.reaperPid, "SIGKILL");
      },
      async reap() {
        if (status.reaperPid !== undefined) signalQuietly(status.reaperPid, "SIGKILL");
        // With a cgroup, superviseJob's `cgroup.killAll()` empties it next.
        const ns = status.pidNamespace;
        if (
          cgroup === undefined &&
          ns !== undefined &&
          !(await killUntilEmpty(() => pidNamespaceMembers(ns)))
        ) {
          log("sandbox processes survived SIGKILL", { jobId: spec.jobId });
        }
        if (uid !== undefined) uids.release(uid);
      },
      exitStatus: (code, signal) =>
        signal !== null ? { exitCode: null, signal } : { exitCode: code, signal: null },
    });
    const [ok] = await Promise.all([started, statusRead]);
    if (!ok) {
      await job.exited;
      job.stdout.resume();
      const stderr = (await readRest(job.stderr)).trim();
      throw new JobRuntimeError(
        "JOB_START_FAILED",
        `sandbox did not start: ${stderr || "no message"}`,
      );
    }
    return job;
  }

  return { kind: "bwrap", run };
}
