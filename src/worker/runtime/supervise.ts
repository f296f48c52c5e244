/**
 * Turns a spawned job process into a `RunningJob`: one exit promise that settles only after every
 * process of the job is gone and its cgroups are removed, and a kill with grace (SIGTERM to every
 * process of the job, SIGKILL to all once the grace is over), the systemd KillMode=control-group way.
 */
import type { ChildProcess } from "node:child_process";
import { constants } from "node:os";
import { PassThrough } from "node:stream";
import type { JobCgroup } from "./job-cgroup.ts";
import {
  DEFAULT_KILL_GRACE_MS,
  type JobExit,
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
  /** After the spawned child closed: kills and waits for what remains. */
  reap(): Promise<void>;
  /** The exit as the runtime sees it, from the child's own status. */
  exitStatus(
    code: number | null,
    signal: NodeJS.Signals | null,
  ): { exitCode: number | null; signal: string | null };
  log: (message: string, fields?: Record<string, unknown>) => void;
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
  const exited = new Promise<JobExit>((resolve) => {
    s.child.once("exit", (code, signal) => {
      void (async (): Promise<JobExit> => {
        const status = s.exitStatus(code, signal);
        await s.reap();
        const oomKilled = (await s.cgroup?.oomKilled()) ?? false;
        await s.cgroup?.killAll();
        await s.cgroup?.remove();
        // A shell-style 128+n status means signal n when we or the OOM killer sent it.
        if (
          status.exitCode !== null &&
          status.exitCode > 128 &&
          (killedWith !== undefined || oomKilled)
        ) {
          const name = signalName(status.exitCode - 128);
          if (name !== undefined) return { exitCode: null, signal: name, oomKilled };
        }
        return { ...status, oomKilled };
      })()
        .catch((error: unknown) => {
          s.log("job cleanup failed", { error: String(error) });
          return { ...s.exitStatus(code, signal), oomKilled: false };
        })
        .then(resolve);
    });
  });
  let killing: Promise<void> | undefined;
  return {
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
}

function signalName(n: number): string | undefined {
  return Object.entries(constants.signals).find(([, value]) => value === n)?.[0];
}
