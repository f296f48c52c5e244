/**
 * The agent's side of the fencing watchdog (watchdog-process.ts): starts it, renews the fence
 * while the coordinator is in contact, and tells it which jobs to end when renewals stop.
 */
import { spawn, type ChildProcess } from "node:child_process";
import type { Socket } from "node:net";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import path from "node:path";
import {
  jobNetnsPath,
  type FenceTarget,
  type JobRuntime,
  type RunningJob,
} from "../runtime/job-runtime.ts";

/** Compiled (dist/), the watchdog is JavaScript that node runs as it is; as source, through tsx. */
const COMPILED = import.meta.url.endsWith(".js");
const WATCHDOG_ENTRY = fileURLToPath(
  new URL(COMPILED ? "./watchdog-process.js" : "./watchdog-process.ts", import.meta.url),
);

export interface FenceWatchdog {
  /** The fence is `fenceInMs` from now: jobs still watched then are killed. */
  renew(fenceInMs: number): void;
  /** Wraps a runtime so every job it starts is watched until it exits. */
  guard<R extends JobRuntime>(runtime: R): R;
  /** Jobs the watchdog killed at a fence, by job id (for the agent's log). */
  onFenced(listener: (jobIds: string[]) => void): void;
  /** Ends the watchdog, which kills whatever it still watches: call after the jobs stopped. */
  stop(): Promise<void>;
}

/**
 * Starts the watchdog process. Run as source, it goes through the same tsx loader as the agent:
 * ~0.3 s and ~40 MB once per worker start, nothing per job.
 */
export function startFenceWatchdog(
  log: (message: string, fields?: Record<string, unknown>) => void,
): FenceWatchdog {
  /** What the watchdog watches, by job id: told again to a watchdog started anew. */
  const watched = new Map<string, object>();
  const listeners: Array<(jobIds: string[]) => void> = [];
  let stopping = false;
  let child = spawnWatchdog();

  function spawnWatchdog(): ChildProcess {
    const spawned = spawn(
      process.execPath,
      COMPILED ? [WATCHDOG_ENTRY] : ["--import", import.meta.resolve("tsx"), WATCHDOG_ENTRY],
      { stdio: ["pipe", "pipe", "inherit"] },
    );
    // The watchdog never keeps the agent alive: an agent that ends (revoked, failed, done) closes
    // the watchdog's stdin by exiting, and the watchdog ends its jobs and exits too.
    spawned.unref();
    for (const pipe of [spawned.stdin, spawned.stdout]) (pipe as Socket | null)?.unref();
    spawned.on("error", (error) => log("fencing watchdog failed", { error: String(error) }));
    spawned.stdin?.on("error", () => undefined); // a dead watchdog is reported by "exit"
    if (spawned.stdout !== null)
      createInterface({ input: spawned.stdout }).on("line", (line) => {
        const { fenced } = JSON.parse(line) as { fenced: string[] };
        for (const id of fenced) watched.delete(id);
        for (const listener of listeners) listener(fenced);
      });
    spawned.once("exit", (code, signal) => {
      if (stopping) return;
      // Killed or crashed: start another and tell it what the last one watched (the next fence
      // check renews it). Until then only the agent's own fencing covers the jobs.
      log("fencing watchdog exited; starting another", { code, signal });
      child = spawnWatchdog();
      for (const message of watched.values()) tell(message);
    });
    return spawned;
  }

  function tell(message: object): void {
    if (child.stdin?.writable === true) child.stdin.write(JSON.stringify(message) + "\n");
  }

  return {
    renew: (fenceInMs) => tell({ renew: Math.max(0, Math.floor(fenceInMs)) }),
    guard<R extends JobRuntime>(runtime: R): R {
      return Object.assign(Object.create(runtime) as R, {
        kind: runtime.kind,
        async run(spec: Parameters<R["run"]>[0]): Promise<RunningJob> {
          const job = await runtime.run(spec);
          const netnsPath = jobNetnsPath(spec);
          const target: FenceTarget = {
            ...(netnsPath === undefined ? {} : { network: path.basename(netnsPath) }),
            ...(job.fenceTarget ?? { pid: job.pid }),
          };
          const message = {
            watch: spec.jobId,
            pid: target.pid,
            kill: target.kill,
            network: target.network,
          };
          watched.set(spec.jobId, message);
          tell(message);
          void job.exited.finally(() => {
            watched.delete(spec.jobId);
            tell({ unwatch: spec.jobId });
          });
          return job;
        },
      });
    },
    onFenced: (listener) => void listeners.push(listener),
    async stop() {
      stopping = true;
      const last = child;
      const exited = new Promise<void>((resolve) => {
        if (last.exitCode !== null || last.signalCode !== null) resolve();
        else last.once("exit", () => resolve());
      });
      last.ref(); // this wait, unlike the watchdog's life, is worth keeping the agent for
      last.stdin?.end();
      await exited;
    },
  };
}
