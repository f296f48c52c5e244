/**
 * The unsandboxed runtime: the job's command as a plain child process of the worker.
 *
 * ONLY for `tandem dev` on a machine without bubblewrap. It gives NO isolation: the job runs as the
 * worker's user, sees the whole host filesystem (the worker's device key included), every other
 * job's files and processes, and the host's network. What it still does: the job gets only its own
 * environment (no worker variables), runs in its job dir, gets cgroup or rlimit limits like the
 * sandbox, and is ended as a whole — its own session and process group, plus its cgroup where one
 * is writable. Without a cgroup, a process that leaves the group (setsid) survives the job.
 * `PROCESS_RUNTIME_WARNING` is the text the caller must print before using it.
 */
import { spawn } from "node:child_process";
import { detectCgroupHierarchies, type CgroupHierarchy } from "./cgroup-detect.ts";
import { createJobCgroup, jobCgroupName, sweepStaleCgroups } from "./job-cgroup.ts";
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
  launchArgv,
  enterNetworkArgv,
  planLimits,
  type LaunchTools,
} from "./launch.ts";
import { signalQuietly } from "./processes.ts";
import { diskWatch, superviseJob } from "./supervise.ts";

export const PROCESS_RUNTIME_WARNING =
  "WARNING: jobs run WITHOUT A SANDBOX (bubblewrap is not usable here). Every job can read and " +
  "change everything this user can — the worker's device key, other jobs' files, your home. " +
  "Use this only for `tandem dev` on your own machine; install bubblewrap (`apt-get install " +
  "bubblewrap`) before running jobs from anyone else.";

/** Options of `createProcessRuntime`. */
export interface ProcessRuntimeOptions {
  /** "auto" (default): cgroup limits where writable, rlimits otherwise. "rlimit": rlimits only. */
  limits?: "auto" | "rlimit";
  log?: (message: string, fields?: Record<string, unknown>) => void;
}

export function createProcessRuntime(
  options: ProcessRuntimeOptions = {},
): JobRuntime & { kind: "process"; warning: string } {
  const log = options.log ?? (() => undefined);
  let host: Promise<{ hierarchies: CgroupHierarchy[]; tools: LaunchTools }> | undefined;

  async function run(spec: JobSpec): Promise<RunningJob> {
    validateJobSpec(spec);
    if (spec.command[0]?.includes("=")) {
      throw new JobRuntimeError(
        "INVALID_JOB_SPEC",
        "the process runtime cannot run a command whose name has '='",
      );
    }
    host ??= (async () => {
      const hierarchies = options.limits === "rlimit" ? [] : await detectCgroupHierarchies();
      await sweepStaleCgroups(hierarchies, log);
      return { hierarchies, tools: await detectLaunchTools() };
    })();
    const { hierarchies, tools } = await host;
    await prepareJobDir(spec.jobDir, undefined, spec.files);
    const cgroup =
      hierarchies.length === 0
        ? undefined
        : await createJobCgroup({
            hierarchies,
            name: jobCgroupName(spec.jobId),
            limits: spec.limits,
            log,
          });
    const plan = planLimits(spec.limits, cgroup, {
      nprocEnforced: process.getuid?.() !== 0,
      prlimit: tools.prlimit !== undefined,
    });
    log(`job ${spec.jobId} limits: ${describeEnforcement(plan.enforcedBy)} (UNSANDBOXED)`, {
      jobId: spec.jobId,
      limitsEnforcedBy: plan.enforcedBy,
    });
    // `env -i` hands the command exactly the job's environment (the launch shell adds PWD, SHLVL)
    // and finds it on the job's PATH.
    const env = Object.entries(jobEnvironment(spec, spec.jobDir)).map(([k, v]) => `${k}=${v}`);
    const argv = [
      ...enterNetworkArgv(tools, jobNetnsPath(spec)),
      ...launchArgv({
        tools,
        keepFds: 3,
        procsFiles: cgroup?.procsFiles ?? [],
        prlimitArgs: plan.prlimitArgs,
        command: [tools.env, "-i", "--", ...env, ...spec.command],
      }),
    ];
    const child = spawn(argv[0]!, argv.slice(1), {
      stdio: ["ignore", "pipe", "pipe"],
      env: {},
      cwd: spec.jobDir,
      detached: true, // a new session and process group, led by the job's first process
    });
    const spawned = await new Promise<unknown>((resolve) => {
      child.once("spawn", () => resolve(undefined));
      child.once("error", (error) => resolve(error));
    });
    if (spawned !== undefined || child.pid === undefined) {
      await cgroup?.remove();
      throw new JobRuntimeError("JOB_START_FAILED", `could not start: ${String(spawned)}`, {
        cause: spawned,
      });
    }
    const group = -child.pid;
    return superviseJob({
      disk: diskWatch(spec),
      child: child as typeof child & { pid: number },
      cgroup,
      limitsEnforcedBy: plan.enforcedBy,
      log,
      async terminate() {
        signalQuietly(group, "SIGTERM");
        for (const pid of (await cgroup?.members()) ?? []) signalQuietly(pid, "SIGTERM");
      },
      forceKill() {
        signalQuietly(group, "SIGKILL");
        cgroup
          ?.killAll()
          .catch((error: unknown) => log("job cgroup kill failed", { error: String(error) }));
      },
      reap() {
        signalQuietly(group, "SIGKILL");
        return Promise.resolve();
      },
      exitStatus: (code, signal) =>
        signal !== null ? { exitCode: null, signal } : { exitCode: code, signal: null },
    });
  }

  return { kind: "process", warning: PROCESS_RUNTIME_WARNING, run };
}
