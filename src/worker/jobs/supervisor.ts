import { createServer } from "node:net";
import { join } from "node:path";
import { rm } from "node:fs/promises";
import type { Readable } from "node:stream";
import type { z } from "zod";
import type {
  JobExitMessage,
  JobStartMessage,
  WorkerMessage,
} from "../../protocol/worker-messages.ts";
import type { JobLimits, JobRuntime, RunningJob } from "../runtime/job-runtime.ts";
import { planRank } from "./cluster-kinds.ts";

export interface JobSupervisorOptions {
  runtime: JobRuntime;
  /** Directory under which each cluster gets its private work dir. */
  jobsDir: string;
  python: string;
  gpuIndices: readonly number[];
  limits: JobLimits;
  send: (message: WorkerMessage) => void;
  log: (message: string, fields?: Record<string, unknown>) => void;
}

/** Most bytes of output one `job-log` message carries (the channel's frame limit is 1 MiB). */
const LOG_BATCH_BYTES = 48 * 1024;

/**
 * Runs this worker's ranks: one sandboxed process tree per cluster, started on `job-start`,
 * ended on `job-stop` (or when the worker stops), with its output streamed as it comes.
 */
export class JobSupervisor {
  private readonly running = new Map<string, RunningJob>();

  constructor(private readonly options: JobSupervisorOptions) {}

  get activeClusters(): number {
    return this.running.size;
  }

  async start(job: JobStartMessage): Promise<void> {
    const { options } = this;
    if (this.running.has(job.clusterId)) return;
    try {
      if (job.kind === "container" && options.runtime.kind !== "podman") {
        throw new Error("container clusters need podman, which this worker does not have");
      }
      const head = job.head ?? { address: "127.0.0.1", port: await freePort() };
      const plan = planRank(job, { head, gpuIndices: options.gpuIndices, python: options.python });
      const jobDir = join(options.jobsDir, job.clusterId);
      const running = await options.runtime.run({
        jobId: `job_${job.clusterId.slice(4)}_r${job.rank}`,
        command: plan.command,
        env: plan.env,
        jobDir,
        limits: options.limits,
        network: "shared",
      });
      this.running.set(job.clusterId, running);
      options.send({
        type: "job-accepted",
        clusterId: job.clusterId,
        rank: job.rank,
        port: job.head === null ? head.port : null,
      });
      const streams = [
        this.pump(job, running.stdout, "stdout"),
        this.pump(job, running.stderr, "stderr"),
      ];
      const exit = await running.exited;
      await Promise.all(streams);
      this.running.delete(job.clusterId);
      options.send(
        exitMessage(job, exit.exitCode, exit.signal, exit.oomKilled ? "out of memory" : null),
      );
      await rm(jobDir, { recursive: true, force: true });
    } catch (error) {
      this.running.delete(job.clusterId);
      options.log("job failed to start", { clusterId: job.clusterId, error: String(error) });
      options.send(
        exitMessage(job, null, null, error instanceof Error ? error.message : String(error)),
      );
    }
  }

  async stop(clusterId: string): Promise<void> {
    await this.running.get(clusterId)?.kill();
  }

  async stopAll(): Promise<void> {
    await Promise.all([...this.running.values()].map((job) => job.kill()));
  }

  private async pump(
    job: JobStartMessage,
    stream: Readable,
    name: "stdout" | "stderr",
  ): Promise<void> {
    let pending = "";
    const flush = (text: string) => {
      const lines = text.split("\n");
      for (let i = 0; i < lines.length; i += 500) {
        this.options.send({
          type: "job-log",
          clusterId: job.clusterId,
          rank: job.rank,
          stream: name,
          lines: lines.slice(i, i + 500).map((l) => l.slice(0, 8192)),
        });
      }
    };
    stream.setEncoding("utf8");
    for await (const chunk of stream as AsyncIterable<string>) {
      pending += chunk;
      const cut = pending.lastIndexOf("\n");
      if (cut < 0 && pending.length < LOG_BATCH_BYTES) continue;
      const complete = cut < 0 ? pending : pending.slice(0, cut);
      pending = cut < 0 ? "" : pending.slice(cut + 1);
      for (let i = 0; i < complete.length; i += LOG_BATCH_BYTES)
        flush(complete.slice(i, i + LOG_BATCH_BYTES));
    }
    if (pending !== "") flush(pending);
  }
}

function exitMessage(
  job: JobStartMessage,
  exitCode: number | null,
  signal: string | null,
  error: string | null,
): z.infer<typeof JobExitMessage> {
  return { type: "job-exit", clusterId: job.clusterId, rank: job.rank, exitCode, signal, error };
}

/** A port nobody listens on right now (the head's rendezvous port). */
function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once("error", reject);
    server.listen(0, "0.0.0.0", () => {
      const address = server.address();
      server.close(() =>
        typeof address === "object" && address !== null
          ? resolve(address.port)
          : reject(new Error("no port")),
      );
    });
  });
}
