/**
 * Turns a spawned job process into a `RunningJob`: one exit promise that settles only after every
 * process of the job is gone and its cgroups are removed, and a kill with grace (SIGTERM to every
 * process of the job, SIGKILL to all once the grace is over), the systemd KillMode=control-group way.
 */
import type { ChildProcess } from "node:child_process";
import { constants } from "node:os";
import { PassThrough } from "node:stream";
import type { ExceededLimit } from "../../protocol/hardware.ts";
import { watchDisk } from "./disk-watch.ts";
import type { JobCgroup } from "./job-cgroup.ts";
import {
  DEFAULT_KILL_GRACE_MS,
  type JobExit,
  type JobSpec,
  type LimitsEnforcedBy,
  type RunningJob,
} from "./job-runtime.ts";

/** What a runtime supplies to `superviseJob`. */
export interface Supervision {
  child: ChildProcess & { pid: number };
  cgroup: JobCgroup | undefined;
  limitsEnforcedBy: LimitsEnforcedBy;
  /** Sends SIGTERM to every process of the job that should handle it. */
  terminate(): Promise<void>;
  /** SIGKILLs the whole job at once. */
  forceKill(): void;
  /** Whether the OOM killer ended a process of the job, where no `cgroup` tells (after `reap`). */
  oomKilled?: () => boolean;
  /** After the spawned child closed: kills and waits for what remains. */
  reap(): Promise<void>;
  /** The exit as the runtime sees it, from the child's own status. */
  exitStatus(
    code: number | null,
    signal: NodeJS.Signals | null,
  ): { exitCode: number | null; signal: string | null };
  log: (message: string, fields?: Record<string, unknown>) => void;
  /** The job dir's disk limit, watched while the job runs (disk-watch.ts); none when unset. */
  disk?: { dir: string; limitMiB: number; sampleIntervalMs?: number } | undefined;
}

/** The disk watch of `spec`'s job dir, when it has a disk limit. */
export function diskWatch(spec: JobSpec): Supervision["disk"] {
  const limitMiB = spec.limits.diskMiB;
  return limitMiB === undefined ? undefined : { dir: spec.jobDir, limitMiB };
}

/** Wires a spawned job into a `RunningJob`: exit, cleanup and kill with grace. */
export function superviseJob(s: Supervision): RunningJob {
  // Our own streams, attached at once: Node drains a child's unread pipes when it exits, so a fast
  // job's output would be lost before the caller attaches. These buffer it, with backpressure.
  const stdout = new PassThrough();
  const stderr = new PassThrough();
  s.child.stdout?.pipe(stdout);
  s.child.stderr?.pipe(stderr);
  let killedWith: string | undefined;
  const disk =
    s.disk === undefined
      ? undefined
      : watchDisk({
          dir: s.disk.dir,
          limitMiB: s.disk.limitMiB,
          ...(s.disk.sampleIntervalMs === undefined ? {} : { intervalMs: s.disk.sampleIntervalMs }),
          onExceeded: () => void job.kill(0),
          log: s.log,
        });
  const exited = new Promise<JobExit>((resolve) => {
    s.child.once("exit", (code, signal) => {
      void (async (): Promise<JobExit> => {
        const status = s.exitStatus(code, signal);
        await s.reap();
        const diskFull = (await disk?.stop()) ?? false;
        const oomKilled = (await s.cgroup?.oomKilled()) ?? s.oomKilled?.() ?? false;
        const pidsHit = (await s.cgroup?.pidsLimitHit()) ?? false;
        await s.cgroup?.killAll();
        await s.cgroup?.remove();
        const exceeded = exceededLimit(status.exitCode, { oomKilled, diskFull, pidsHit });
        const extra = { oomKilled, ...(exceeded === undefined ? {} : { limitExceeded: exceeded }) };
        // A shell-style 128+n status means signal n when we or the OOM killer sent it.
        if (
          status.exitCode !== null &&
          status.exitCode > 128 &&
          (killedWith !== undefined || oomKilled)
        ) {
          const name = signalName(status.exitCode - 128);
          if (name !== undefined) return { exitCode: null, signal: name, ...extra };
        }
        return { ...status, ...extra };
      })()
        .catch((error: unknown) => {
          s.log("job cleanup failed", { error: String(error) });
          return { ...s.exitStatus(code, signal), oomKilled: false };
        })
        .then(resolve);
    });
  });
  let killing: Promise<void> | undefined;
  const job: RunningJob = {
    pid: s.child.pid,
    stdout,
    stderr,
    exited,
    limitsEnforcedBy: s.limitsEnforcedBy,
    kill(graceMs = DEFAULT_KILL_GRACE_MS) {
      killing ??= (async () => {
        killedWith = "SIGTERM";
        if (graceMs > 0) {
          await s.terminate();
          let timer: NodeJS.Timeout | undefined;
          const graceOver = new Promise<false>(
            (r) => (timer = setTimeout(() => r(false), graceMs)),
          );
          const ended = await Promise.race([exited.then(() => true), graceOver]);
          clearTimeout(timer);
          if (ended) return;
        }
        killedWith = "SIGKILL";
        s.forceKill();
        await exited;
      })();
      return killing;
    },
  };
  return job;
}

/**
 * The limit a job that did not exit 0 ran into. Memory first (the OOM killer's kill explains the
 * end best), then disk (the watcher's kill), then pids (a refused fork the job may have survived).
 */
function exceededLimit(
  exitCode: number | null,
  hit: { oomKilled: boolean; diskFull: boolean; pidsHit: boolean },
): ExceededLimit | undefined {
  if (exitCode === 0) return undefined;
  if (hit.oomKilled) return "memory";
  if (hit.diskFull) return "disk";
  if (hit.pidsHit) return "pids";
  return undefined;
}

function signalName(n: number): string | undefined {
  return Object.entries(constants.signals).find(([, value]) => value === n)?.[0];
}
