import { mkdir } from "node:fs/promises";
import { join } from "node:path";
import type { Command } from "commander";
import { startWorker, type Worker } from "../../worker/main.ts";
import { removePidFile, writePidFile } from "../../worker/pid-file.ts";
import { resolveConnection, tandemHome } from "../context.ts";
import { withClientOptions, type ClientOptions } from "./common.ts";
import { untilSignal } from "./signals.ts";
import { DRAIN_REASON, DRAIN_SIGNAL, registerWorkerDrainCommand } from "./worker-drain.ts";

interface WorkerOptions extends ClientOptions {
  region: string;
  zone: string;
  home?: string;
  nvidiaSmi?: string;
  python?: string;
  allowUnsandboxed?: boolean;
  jobOutputRate?: string;
  jobOutputBurst?: string;
  jobOutputMax?: string;
}

/** A size in MiB from the command line (decimals allowed), in bytes. */
const mib = (value: string) => Math.round(Number(value) * 1024 * 1024);

export function registerWorkerCommands(program: Command): void {
  const worker = program
    .command("worker")
    .description("the worker agent a supplier runs on each machine");
  withClientOptions(
    worker
      .command("start")
      .description("register this machine and serve the network until stopped"),
  )
    .requiredOption("--region <region>", "where this machine is, e.g. eu-west")
    .requiredOption("--zone <zone>", "its zone, e.g. eu-west-a")
    .option("--home <dir>", "worker state dir (default $TANDEM_HOME/worker)")
    .option("--nvidia-smi <path>", "nvidia-smi to probe GPUs with", "nvidia-smi")
    .option("--python <path>", "Python with torch/dask for cluster jobs", "/usr/bin/python3")
    .option(
      "--allow-unsandboxed",
      "development only: run jobs without a sandbox when bubblewrap is unusable",
    )
    .option("--job-output-rate <MiB>", "output a rank may send per second; more is dropped", "1")
    .option("--job-output-burst <MiB>", "output a rank may send at once above that rate", "4")
    .option(
      "--job-output-max <MiB>",
      "all the output a rank may send; later output is dropped",
      "64",
    )
    .action(async (options: WorkerOptions) => {
      const { url, apiKey } = await resolveConnection(options);
      if (apiKey === undefined) {
        throw new Error(
          "a supplier API key is needed: --api-key, $TANDEM_API_KEY or `tandem login`",
        );
      }
      const home = options.home ?? defaultHome();
      const drainSignals = handleDrainSignals();
      await mkdir(home, { recursive: true, mode: 0o700 });
      await writePidFile(home);
      try {
        const worker = await startWorker({
          home,
          coordinatorUrl: url,
          apiKey,
          region: options.region,
          zone: options.zone,
          ...(options.nvidiaSmi === undefined ? {} : { nvidiaSmi: options.nvidiaSmi }),
          ...(options.python === undefined ? {} : { python: options.python }),
          allowUnsandboxed: options.allowUnsandboxed === true,
          ...(options.jobOutputRate === undefined
            ? {}
            : { jobOutputBytesPerSec: mib(options.jobOutputRate) }),
          ...(options.jobOutputBurst === undefined
            ? {}
            : { jobOutputBurstBytes: mib(options.jobOutputBurst) }),
          ...(options.jobOutputMax === undefined
            ? {}
            : { jobOutputMaxBytes: mib(options.jobOutputMax) }),
        });
        if (options.json)
          process.stdout.write(
            JSON.stringify({ deviceId: worker.deviceId, nodeId: worker.nodeId }) + "\n",
          );
        else
          process.stdout.write(
            `worker ${worker.deviceId} serving node ${worker.nodeId} (Ctrl-C to stop)\n`,
          );
        await serveUntilStopped(worker, drainSignals);
      } finally {
        await removePidFile(home);
        drainSignals.dispose();
      }
    });
  registerWorkerDrainCommand(worker, defaultHome);
}

const defaultHome = () => join(tandemHome(), "worker");

/**
 * Serves until SIGINT or SIGTERM (stop now), the drain signal (stop once the coordinator answers
 * `drained`) or revocation (exit code 3, no goodbye: the coordinator has closed the door).
 */
async function serveUntilStopped(worker: Worker, drainSignals: DrainSignals): Promise<void> {
  const revoked = new Promise<"revoked">((resolve) =>
    worker.link.once("revoked", () => resolve("revoked")),
  );
  // Each signal asks again (the coordinator treats a repeated drain as the same one).
  const drained = new Promise<"drained">((resolve) =>
    drainSignals.listen(() => void worker.drain(DRAIN_REASON).then(() => resolve("drained"))),
  );
  const outcome = await Promise.race([untilSignal(), revoked, drained]);
  if (outcome === "revoked") {
    process.stderr.write("this device was revoked by the network; it will not reconnect\n");
    process.exitCode = 3;
    return;
  }
  await worker.stop(outcome === "drained" ? "drained" : `received ${outcome}`);
}

interface DrainSignals {
  /** Calls `onRequest` for each drain signal, those that came before it was given included. */
  listen(onRequest: () => void): void;
  dispose(): void;
}

/**
 * Handles the drain signal from the start of `worker start` on, before the pid file advertises
 * it: the signal's default action would kill the worker.
 */
function handleDrainSignals(): DrainSignals {
  let requested = false;
  let listener: (() => void) | undefined;
  const onSignal = () => {
    requested = true;
    listener?.();
  };
  process.on(DRAIN_SIGNAL, onSignal);
  return {
    listen(onRequest) {
      listener = onRequest;
      if (requested) onRequest();
    },
    dispose: () => process.off(DRAIN_SIGNAL, onSignal),
  };
}
