/**
 * A worker agent in a process of its own, as on a real supplier machine, so that a benchmark's
 * workers neither share one event loop nor make every sandbox spawn fork one large process.
 * argv[2] is the worker config as JSON. IPC: the child posts `{ type: "ready", nodeId }` once
 * registered and connected, then one `{ type: "sandbox", jobId, startMs, upMs }` per job it starts
 * (epoch milliseconds with sub-millisecond precision: when the runtime was asked to start the job,
 * and when its processes existed) and one `{ type: "sandbox-gone", jobId }` once that job's
 * processes, cgroups and sandbox are gone; it answers "cpu" with `{ type: "cpu", workerMs, sandboxMs }`
 * (CPU time so far of the worker itself, and of its ended sandboxes: the children it reaped);
 * it stops on "stop".
 *
 * Use `startWorkerProcess(config)` from the benchmark.
 */
import { fork } from "node:child_process";
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import type { WorkerConfigInput } from "../../src/worker/config.ts";
import { startWorker } from "../../src/worker/main.ts";
import { createBwrapRuntime } from "../../src/worker/runtime/bwrap-runtime.ts";

/** One sandbox start as the worker saw it; epoch milliseconds. */
export interface SandboxMark {
  jobId: string;
  startMs: number;
  upMs: number;
}

export interface WorkerProcess {
  nodeId: string;
  /** CPU time (user + system) so far, ms: the worker's own, and its ended sandboxes'. */
  cpuMs(): Promise<{ workerMs: number; sandboxMs: number }>;
  stop(): Promise<void>;
}

/** Epoch milliseconds with the monotonic clock's precision (comparable across processes). */
export const epochMs = (): number => performance.timeOrigin + performance.now();

export async function startWorkerProcess(
  config: WorkerConfigInput,
  onSandbox: (mark: SandboxMark) => void,
  onSandboxGone: (jobId: string) => void = () => {},
): Promise<WorkerProcess> {
  const child = fork(fileURLToPath(import.meta.url), [JSON.stringify(config)], {
    // TANDEM_BENCH_WORKER_PROF=DIR: a V8 CPU profile of each worker there.
    execArgv: [
      "--import",
      "tsx",
      ...(process.env.TANDEM_BENCH_WORKER_PROF === undefined
        ? []
        : ["--cpu-prof", `--cpu-prof-dir=${process.env.TANDEM_BENCH_WORKER_PROF}`]),
    ],
  });
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  child.on("message", (message: { type?: string } & Partial<SandboxMark>) => {
    if (message.type === "sandbox") onSandbox(message as SandboxMark);
    if (message.type === "sandbox-gone") onSandboxGone(message.jobId!);
  });
  const nodeId = await new Promise<string>((resolve, reject) => {
    child.once("exit", (code) => reject(new Error(`worker process exited (${code}) before ready`)));
    child.on("message", (message: { type?: string; nodeId?: string }) => {
      if (message.type === "ready" && message.nodeId !== undefined) resolve(message.nodeId);
    });
  });
  return {
    nodeId,
    cpuMs: () =>
      new Promise((resolve) => {
        const onMessage = (message: { type?: string; workerMs?: number; sandboxMs?: number }) => {
          if (message.type !== "cpu") return;
          child.off("message", onMessage);
          resolve({ workerMs: message.workerMs!, sandboxMs: message.sandboxMs! });
        };
        child.on("message", onMessage);
        child.send("cpu");
      }),
    stop: async () => {
      child.send("stop");
      await exited;
    },
  };
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const inner = createBwrapRuntime();
  const worker = await startWorker(JSON.parse(process.argv[2] ?? "{}") as WorkerConfigInput, {
    log: () => {},
    runtime: {
      kind: inner.kind,
      async run(spec) {
        const startMs = epochMs();
        const job = await inner.run(spec);
        process.send?.({ type: "sandbox", jobId: spec.jobId, startMs, upMs: epochMs() });
        void job.exited.then(() => process.send?.({ type: "sandbox-gone", jobId: spec.jobId }));
        return job;
      },
    },
  });
  process.send?.({ type: "ready", nodeId: worker.nodeId });
  process.on("message", (message) => {
    if (message === "cpu") process.send?.({ type: "cpu", ...ownAndChildrenCpuMs() });
    if (message === "stop") void worker.stop().then(() => process.exit(0));
  });
}

/** This process's CPU time and its reaped children's, ms (/proc/self/stat, in clock ticks). */
function ownAndChildrenCpuMs(): { workerMs: number; sandboxMs: number } {
  const { user, system } = process.cpuUsage();
  const stat = readFileSync("/proc/self/stat", "utf8");
  // Fields after the command name (which may hold spaces): cutime and cstime are the 14th and
  // 15th of those (fields 16 and 17 of the line).
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  const ticks = Number(fields[13]) + Number(fields[14]);
  return { workerMs: (user + system) / 1000, sandboxMs: (ticks * 1000) / CLOCK_TICKS_PER_S };
}

/** USER_HZ: 100 on Linux for every architecture Node runs on. */
const CLOCK_TICKS_PER_S = 100;
