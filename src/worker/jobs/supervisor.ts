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
import {
  JobRuntimeError,
  type JobLimits,
  type JobRuntime,
  type RunningJob,
} from "../runtime/job-runtime.ts";
import { planRank } from "./cluster-kinds.ts";

export interface JobSupervisorOptions {
  runtime: JobRuntime;
  /** Runs `container` clusters (podman); undefined where podman is not usable. */
  containers?: JobRuntime | undefined;
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

/** One run of a rank: the `job-start` it answers and, once started, its processes. */
interface Run {
  readonly job: JobStartMessage;
  process: RunningJob | undefined;
  /** Set once the run is asked to end; a run asked before its processes exist never starts them. */
  stopping: { graceMs: number | undefined } | undefined;
  /** Settles once the run is over: its processes gone, its output and its `job-exit` sent. */
  done: Promise<void>;
}

/**
 * Runs this worker's ranks: one sandboxed process tree per cluster (a node serves one rank of a
 * cluster), started on `job-start`, ended on `job-stop`, when the worker stops or when it fences
 * itself, with its output streamed as it comes. Every message echoes the run's `attempt`.
 *
 * Attempts. A rank restarted after a failover (torch restarts every rank with a fresh rendezvous)
 * arrives as a new `job-start` for the same cluster with a higher attempt. Per cluster only the
 * newest attempt counts:
 * - the same attempt as the current run is a resent duplicate and is ignored, a lower one is stale;
 * - a higher one ends the current run, waits until its processes are gone (its `job-exit` still
 *   goes out under its own attempt; the coordinator ignores it), then starts in the SAME job dir,
 *   so a job that checkpoints into its work dir can resume from it.
 * The job dir is removed when the cluster's newest run ends (by itself or on `job-stop`), never by
 * a run that a newer attempt has replaced.
 */
export class JobSupervisor {
  /** The newest run of each cluster. */
  private readonly runs = new Map<string, Run>();
  /** Every run not over yet, replaced ones included (a restart waits for them to end). */
  private readonly live = new Set<Run>();

  constructor(private readonly options: JobSupervisorOptions) {}

  /** Clusters with a run on this worker, starting, running or ending. */
  get activeClusters(): number {
    return this.runs.size;
  }

  /** Starts (or restarts, for a higher attempt) a rank; settles when that run is over. */
  start(job: JobStartMessage): Promise<void> {
    const current = this.runs.get(job.clusterId);
    if (current !== undefined && job.attempt <= current.job.attempt) {
      if (job.attempt < current.job.attempt)
        this.options.log("stale job-start ignored", {
          clusterId: job.clusterId,
          attempt: job.attempt,
          current: current.job.attempt,
        });
      return Promise.resolve();
    }
    const run: Run = { job, process: undefined, stopping: undefined, done: Promise.resolve() };
    this.runs.set(job.clusterId, run);
    this.live.add(run);
    run.done = this.execute(run, current).finally(() => this.live.delete(run));
    return run.done;
  }

  /** Ends the cluster's run (`job-stop`); settles once it is over and its job dir is gone. */
  async stop(clusterId: string): Promise<void> {
    const run = this.runs.get(clusterId);
    if (run === undefined) return;
    this.halt(run, undefined);
    await run.done;
  }

  /**
   * Ends every run, each with SIGTERM then SIGKILL after `graceMs` (default: the runtime's), and
   * settles once all are over. Answers how many runs it asked to end (those not ending already).
   */
  async stopAll(options: { graceMs?: number } = {}): Promise<number> {
    const runs = [...this.live];
    const stopped = runs.filter((run) => this.halt(run, options.graceMs)).length;
    await Promise.all(runs.map((run) => run.done));
    return stopped;
  }

  private halt(run: Run, graceMs: number | undefined): boolean {
    if (run.stopping !== undefined) return false;
    run.stopping = { graceMs };
    void run.process?.kill(graceMs);
    return true;
  }

  /** Gives the run its processes, ending them at once if the run was halted while starting. */
  private attach(run: Run, running: RunningJob): void {
    run.process = running;
    if (run.stopping !== undefined) void running.kill(run.stopping.graceMs);
  }

  private async execute(run: Run, previous: Run | undefined): Promise<void> {
    const { options } = this;
    const { job } = run;
    const jobDir = join(options.jobsDir, job.clusterId);
    try {
      if (previous !== undefined) {
        options.log("restarting rank for a newer attempt", {
          clusterId: job.clusterId,
          rank: job.rank,
          from: previous.job.attempt,
          to: job.attempt,
        });
        this.halt(previous, undefined);
        await previous.done;
      }
      if (run.stopping !== undefined) {
        options.send(exitMessage(job, null, null, "stopped before it started"));
        return;
      }
      const runtime = job.kind === "container" ? options.containers : options.runtime;
      if (runtime === undefined)
        throw new Error("container clusters need podman, which this worker does not have");
      const head = job.head ?? { address: "127.0.0.1", port: await freePort() };
      // The head tells its port before its launch, so the other ranks start beside it.
      if (job.head === null && job.rank === 0)
        options.send({
          type: "job-rendezvous",
          clusterId: job.clusterId,
          rank: 0,
          attempt: job.attempt,
          port: head.port,
        });
      const plan = planRank(job, { head, gpuIndices: options.gpuIndices, python: options.python });
      const running = await runtime.run({
        // Stable across attempts: a root worker's sandbox uid derives from it, and the new attempt
        // must own the files the previous one left in the job dir.
        jobId: `job_${job.clusterId.slice(4)}_r${job.rank}`,
        command: plan.command,
        env: plan.env,
        jobDir,
        limits: options.limits,
        network: "shared",
        ...(job.image === null ? {} : { image: job.image }),
      });
      this.attach(run, running);
      options.send({
        type: "job-accepted",
        clusterId: job.clusterId,
        rank: job.rank,
        attempt: job.attempt,
        port: job.head === null ? head.port : null,
      });
      const streams = [
        this.pump(job, running.stdout, "stdout"),
        this.pump(job, running.stderr, "stderr"),
      ];
      const exit = await running.exited;
      await Promise.all(streams);
      options.send(
        exitMessage(job, exit.exitCode, exit.signal, exit.oomKilled ? "out of memory" : null),
      );
    } catch (error) {
      options.log("job failed to start", {
        clusterId: job.clusterId,
        attempt: job.attempt,
        error: String(error),
      });
      options.send({
        ...exitMessage(job, null, null, error instanceof Error ? error.message : String(error)),
        startFailure: startFailureOf(error),
      });
    } finally {
      // Only the cluster's newest run owns the dir; the entry stays until the dir is gone, so a
      // newer attempt arriving meanwhile waits for the removal instead of racing it.
      if (this.runs.get(job.clusterId) === run) {
        await rm(jobDir, { recursive: true, force: true }).catch((error: unknown) =>
          options.log("job dir removal failed", { jobDir, error: String(error) }),
        );
        if (this.runs.get(job.clusterId) === run) this.runs.delete(job.clusterId);
      }
    }
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
          attempt: job.attempt,
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
  return {
    type: "job-exit",
    clusterId: job.clusterId,
    rank: job.rank,
    attempt: job.attempt,
    exitCode,
    signal,
    error,
  };
}

/** Whose a start failure is: the consumer's image or job spec, else the node's. */
function startFailureOf(error: unknown): "image-missing" | "invalid-job" | "start-failed" {
  if (!(error instanceof JobRuntimeError)) return "start-failed";
  switch (error.code) {
    case "IMAGE_MISSING":
      return "image-missing";
    case "INVALID_JOB_SPEC":
      return "invalid-job";
    case "RUNTIME_UNAVAILABLE":
    case "JOB_START_FAILED":
      return "start-failed";
  }
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
