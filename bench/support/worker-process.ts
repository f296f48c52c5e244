/**
 * A worker agent in a process of its own, as on a real supplier machine, so that a benchmark's
 * workers neither share one event loop nor make every sandbox spawn fork one large process.
 * argv[2] is the worker config as JSON. IPC: the child posts `{ type: "ready", nodeId }` once
 * registered and connected, then one `{ type: "sandbox", jobId, startMs, upMs }` per job it starts
 * (epoch milliseconds with sub-millisecond precision: when the runtime was asked to start the job,
 * and when its processes existed) and one `{ type: "sandbox-gone", jobId }` once that job's
 * processes, cgroups and sandbox are gone; it stops on "stop".
 *
 * Use `startWorkerProcess(config)` from the benchmark.
 */
import { fork } from "node:child_process";
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
    execArgv: ["--import", "tsx"],
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
    if (message === "stop") void worker.stop().then(() => process.exit(0));
  });
}
