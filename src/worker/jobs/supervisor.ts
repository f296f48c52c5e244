import { createServer } from "node:net";
import { join } from "node:path";
import { rm } from "node:fs/promises";
import type { Readable } from "node:stream";
import { StringDecoder } from "node:string_decoder";
import type { z } from "zod";
import type {
  JobExitMessage,
  JobStartMessage,
  TaskExit,
  WorkerMessage,
} from "../../protocol/worker-messages.ts";
import type { ExceededLimit, RankLimits } from "../../protocol/hardware.ts";
import { SecretOpenError } from "../../protocol/sealed-secrets.ts";
import { overlayAddressOf, type JobPeersMessage } from "../../protocol/cluster-network.ts";
import {
  jobDirInside,
  JobRuntimeError,
  type JobLimits,
  type JobRuntime,
  type RunningJob,
} from "../runtime/job-runtime.ts";
import { planRank } from "./cluster-kinds.ts";
import { openJobSecrets, type DeviceSecretKey } from "./job-secrets.ts";
import { jobTlsFiles, tlsPaths } from "./job-tls.ts";
import { rankLimits } from "./offer.ts";
import { RankNetwork, type RankNetworkPorts } from "./rank-network.ts";
import { RankOutput, type OutputBatch, type OutputLimits } from "./rank-output.ts";
import { readTaskExits, taskRunCommand } from "./task-run.ts";

/** A worker that builds no rank networks (./rank-network.ts). */
const NO_NETWORKS: RankNetworkPorts = { localAddress: () => undefined };

export interface JobSupervisorOptions {
  runtime: JobRuntime;
  /** Runs `container` clusters (podman); undefined where podman is not usable. */
  containers?: JobRuntime | undefined;
  /** Directory under which each cluster gets its private work dir. */
  jobsDir: string;
  python: string;
  gpuIndices: readonly number[];
  /** What each rank may use at most (jobs/offer.ts); a job-start's ask narrows it. */
  offer: RankLimits;
  /** Opens the sealed secrets of a `job-start` (./job-secrets.ts); a job with some needs it. */
  secretKey?: DeviceSecretKey | undefined;
  /** Caps and batching of each rank's output (rank-output.ts). */
  output: OutputLimits;
  /**
   * What this worker builds rank networks with (./rank-network.ts); absent: nothing, so a rank
   * runs on the host's network where the coordinator allows it and fails to start otherwise.
   */
  network?: RankNetworkPorts | undefined;
  send: (message: WorkerMessage) => void;
  log: (message: string, fields?: Record<string, unknown>) => void;
}

/** One run of a rank: the `job-start` it answers and, once started, its processes. */
interface Run {
  readonly job: JobStartMessage;
  process: RunningJob | undefined;
  /** Its network, once planned (./rank-network.ts). */
  network: RankNetwork | undefined;
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
    const run: Run = {
      job,
      process: undefined,
      network: undefined,
      stopping: undefined,
      done: Promise.resolve(),
    };
    this.runs.set(job.clusterId, run);
    this.live.add(run);
    run.done = this.execute(run, current).finally(() => this.live.delete(run));
    return run.done;
  }

  /** A `job-peers` from the coordinator: the overlay peers of the cluster's run here. */
  async setPeers(message: JobPeersMessage): Promise<void> {
    const network = this.runs.get(message.clusterId)?.network;
    if (network === undefined)
      this.options.log("peer list for no run here ignored", { clusterId: message.clusterId });
    else await network.setPeers(message);
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
    run.network?.halt();
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
      const limits = rankLimits(options.offer, job.limits);
      if (!limits.ok) throw new Error(limits.message);
      const runtime = job.kind === "container" ? options.containers : options.runtime;
      if (runtime === undefined)
        throw new Error("container clusters need podman, which this worker does not have");
      const secrets = job.secrets === undefined ? {} : openJobSecrets(job, secretKeyOf(options));
      const tlsFiles = job.tls === undefined ? undefined : jobTlsFiles(job, secretKeyOf(options));
      const network = RankNetwork.plan(
        job,
        options.network ?? NO_NETWORKS,
        options.send,
        options.log,
      );
      run.network = network;
      const onOverlay = network.onOverlay ? { overlay: true as const } : {};
      const head = job.head ?? {
        address: network.onOverlay ? overlayAddressOf(0) : "127.0.0.1",
        port: await freePort(),
      };
      // The head tells its port before its launch, so the other ranks start beside it.
      if (job.head === null && job.rank === 0)
        options.send({
          type: "job-rendezvous",
          clusterId: job.clusterId,
          rank: 0,
          attempt: job.attempt,
          port: head.port,
          ...onOverlay,
        });
      const plan = planRank(
        { ...job, env: { ...job.env, ...network.engineEnv(), ...secrets } },
        {
          head,
          gpuIndices: options.gpuIndices,
          python: options.python,
          tls: tlsFiles === undefined ? undefined : tlsPaths(jobDirInside(runtime.kind, jobDir)),
        },
      );
      // A task run: its tasks one after another in this one sandbox (./task-run.ts).
      if (job.tasks !== undefined)
        plan.command = taskRunCommand(job.tasks, jobDirInside(runtime.kind, jobDir));
      await network.open();
      if (run.stopping !== undefined) {
        options.send(exitMessage(job, null, null, "stopped before it started"));
        return;
      }
      const running = await runtime.run({
        // Stable across attempts: a root worker's sandbox uid derives from it, and the new attempt
        // must own the files the previous one left in the job dir.
        jobId: `job_${job.clusterId.slice(4)}_r${job.rank}`,
        command: plan.command,
        env: plan.env,
        jobDir,
        limits: jobLimits(limits.limits),
        network: network.runtimeNetwork(),
        ...(job.image === null ? {} : { image: job.image }),
        ...(tlsFiles === undefined ? {} : { files: tlsFiles }),
      });
      this.attach(run, running);
      options.send({
        type: "job-accepted",
        clusterId: job.clusterId,
        rank: job.rank,
        attempt: job.attempt,
        port: job.head === null ? head.port : null,
        ...(job.head === null ? onOverlay : {}),
      });
      const exit = await this.relayOutput(job, running);
      const taskExits =
        job.tasks === undefined ? undefined : await readTaskExits(jobDir, job.tasks);
      options.send(
        exitMessage(job, exit.exitCode, exit.signal, exitError(exit.limitExceeded, limits.limits), {
          limitExceeded: exit.limitExceeded,
          taskExits,
        }),
      );
    } catch (error) {
      options.log("job failed to start", {
        clusterId: job.clusterId,
        attempt: job.attempt,
        error: String(error),
      });
      const exit = {
        ...exitMessage(job, null, null, error instanceof Error ? error.message : String(error)),
        startFailure: startFailureOf(error),
      };
      options.send(error instanceof SecretOpenError ? { ...exit, secretsRefused: true } : exit);
    } finally {
      await run.network?.close();
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

  /**
   * Reads the job's output to its end as fast as it comes (a job never waits on its output) and
   * sends it batched and capped (rank-output.ts); answers how the job ended.
   */
  private async relayOutput(job: JobStartMessage, running: RunningJob) {
    const now = () => performance.now();
    const output = new RankOutput(this.options.output, now());
    let timer: NodeJS.Timeout | undefined;
    const post = (batches: OutputBatch[]) => {
      for (const { stream, lines } of batches)
        this.options.send({
          type: "job-log",
          clusterId: job.clusterId,
          rank: job.rank,
          attempt: job.attempt,
          stream,
          lines,
        });
    };
    const send = (batches: OutputBatch[]) => {
      post(batches);
      const dueAtMs = output.dueAtMs;
      if (timer !== undefined || dueAtMs === undefined) return;
      timer = setTimeout(
        () => {
          timer = undefined;
          send(output.flush(now()));
        },
        Math.max(0, dueAtMs - now()),
      );
    };
    const read = async (stream: Readable, name: "stdout" | "stderr") => {
      let decoder = new StringDecoder("utf8");
      for await (const chunk of stream as AsyncIterable<Buffer>) {
        // A flood is dropped without decoding it; the decoder starts afresh after a drop.
        if (output.accepting(now())) send(output.write(name, decoder.write(chunk), now()));
        else {
          output.discard(name, chunk.length, chunk.at(-1) === 0x0a, now());
          decoder = new StringDecoder("utf8");
        }
      }
      send(output.write(name, decoder.end(), now()));
    };
    const reading = Promise.all([read(running.stdout, "stdout"), read(running.stderr, "stderr")]);
    const exit = await running.exited;
    await reading;
    clearTimeout(timer);
    post(output.flush(now(), true));
    return exit;
  }
}

function exitMessage(
  job: JobStartMessage,
  exitCode: number | null,
  signal: string | null,
  error: string | null,
  extra: { limitExceeded?: ExceededLimit | undefined; taskExits?: TaskExit[] | undefined } = {},
): z.infer<typeof JobExitMessage> {
  return {
    type: "job-exit",
    clusterId: job.clusterId,
    rank: job.rank,
    attempt: job.attempt,
    exitCode,
    signal,
    error,
    ...(extra.limitExceeded === undefined ? {} : { limitExceeded: extra.limitExceeded }),
    ...(extra.taskExits === undefined ? {} : { taskExits: extra.taskExits }),
  };
}

/** The runtime's limits for a rank's limits (every runtime applies all four). */
function jobLimits(limits: RankLimits): JobLimits {
  return {
    memoryMiB: limits.memoryMiB,
    cpuCores: limits.cpuCores,
    maxProcesses: limits.pids,
    diskMiB: limits.diskMiB,
  };
}

/** The exit's `error` text for a rank that ran into a limit, e.g. "exceeded its memory limit (512 MiB)". */
function exitError(exceeded: ExceededLimit | undefined, limits: RankLimits): string | null {
  switch (exceeded) {
    case undefined:
      return null;
    case "memory":
      return `exceeded its memory limit (${limits.memoryMiB} MiB)`;
    case "disk":
      return `exceeded its disk limit on /job (${limits.diskMiB} MiB)`;
    case "pids":
      return `exceeded its pids limit (${limits.pids} tasks)`;
  }
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

function secretKeyOf(options: JobSupervisorOptions): DeviceSecretKey {
  if (options.secretKey === undefined) throw new Error("this worker cannot open sealed secrets");
  return options.secretKey;
}
