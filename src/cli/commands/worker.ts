import { mkdir, readFile } from "node:fs/promises";
import { join } from "node:path";
import type { Command } from "commander";
import type { Worker } from "../../worker/main.ts";
import { resolveConnection, tandemHome } from "../context.ts";
import {
  parseCpus,
  parseIntOption,
  parseSize,
  withClientOptions,
  type ClientOptions,
} from "./common.ts";
import { untilSignal } from "./signals.ts";
import { DRAIN_REASON, DRAIN_SIGNAL, registerWorkerDrainCommand } from "./worker-drain.ts";
import { registerEnrollTokenCommand, registerEnrollTokensCommand } from "./worker-enroll.ts";

interface WorkerOptions extends ClientOptions {
  region: string;
  zone: string;
  enrollToken?: string;
  enrollTokenFile?: string;
  caFile?: string;
  insecure?: boolean;
  home?: string;
  nvidiaSmi?: string;
  gpuProver?: string;
  python?: string;
  allowUnsandboxed?: boolean;
  /** false with `--no-job-networks`. */
  jobNetworks?: boolean;
  overlayPorts?: { from: number; to: number };
  publicAddress?: string;
  maxMemory?: number;
  maxCpus?: number;
  maxPids?: number;
  maxDisk?: number;
  jobOutputRate?: string;
  jobOutputBurst?: string;
  jobOutputMax?: string;
}

/** The `--max-*` flags as worker config. */
function offerSettings(options: WorkerOptions) {
  return {
    ...(options.maxMemory === undefined ? {} : { maxMemoryMiB: options.maxMemory }),
    ...(options.maxCpus === undefined ? {} : { maxCpus: options.maxCpus }),
    ...(options.maxPids === undefined ? {} : { maxPids: options.maxPids }),
    ...(options.maxDisk === undefined ? {} : { maxDiskMiB: options.maxDisk }),
  };
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
      .description(
        "register this machine and serve the network until stopped (--url may list a coordinator's replicas, comma-separated: the worker moves to the next when one goes)",
      ),
    { apiKey: false },
  )
    .requiredOption("--region <region>", "where this machine is, e.g. eu-west")
    .requiredOption("--zone <zone>", "its zone, e.g. eu-west-a")
    .option(
      "--enroll-token-file <path>",
      "file holding the enrollment token from `tandem worker enroll-token` (first start only)",
    )
    .option(
      "--enroll-token <token>",
      "the enrollment token itself (visible in `ps`: prefer the file or $TANDEM_ENROLL_TOKEN)",
    )
    .option(
      "--ca-file <pem>",
      "trust only this CA for an https coordinator (a private CA; default: the system's roots)",
    )
    .option(
      "--insecure",
      "allow plain http:// or ws:// to a coordinator on another machine (unencrypted)",
    )
    .option("--home <dir>", "worker state dir (default $TANDEM_HOME/worker)")
    .option("--nvidia-smi <path>", "nvidia-smi to probe GPUs with", "nvidia-smi")
    .option(
      "--gpu-prover <path>",
      "helper that proves each GPU (default: the one shipped with the worker)",
    )
    .option("--python <path>", "Python with torch/dask for cluster jobs", "/usr/bin/python3")
    .option(
      "--max-memory <size>",
      "memory each rank may use, e.g. 16GiB (default: all but a host reserve)",
      parseSize("--max-memory"),
    )
    .option(
      "--max-cpus <cores>",
      "CPU cores each rank may use, e.g. 4 or 1.5 (default: all)",
      parseCpus("--max-cpus"),
    )
    .option(
      "--max-pids <n>",
      "processes and threads each rank may have at once (default 4096)",
      parseIntOption("--max-pids"),
    )
    .option(
      "--max-disk <size>",
      "disk each rank may fill in /job, e.g. 50GiB (default: half the free space)",
      parseSize("--max-disk"),
    )
    .option(
      "--allow-unsandboxed",
      "development only: run jobs without a sandbox when bubblewrap is unusable",
    )
    .option(
      "--no-job-networks",
      "run ranks on the host's network: no namespace, NAT, isolation rules or overlay per rank",
    )
    .option(
      "--overlay-ports <from-to>",
      "UDP ports cluster overlays listen on; open them to other hosts (default 51820-51899)",
      parsePortRange,
    )
    .option(
      "--public-address <ipv4>",
      "where peers reach this host's overlays, if not at its address toward the coordinator",
    )
    .option("--job-output-rate <MiB>", "output a rank may send per second; more is dropped", "1")
    .option("--job-output-burst <MiB>", "output a rank may send at once above that rate", "4")
    .option(
      "--job-output-max <MiB>",
      "all the output a rank may send; later output is dropped",
      "64",
    )
    .action(async (options: WorkerOptions) => {
      const { assertSecureCoordinator } = await import("../../worker/coordinator-trust.ts");
      const { removePidFile, writePidFile } = await import("../../worker/pid-file.ts");
      const { startWorker } = await import("../../worker/main.ts");
      const { url: urls } = await resolveConnection(options);
      const [url = "", ...moreUrls] = urls.split(",").map((u) => u.trim());
      const insecure = options.insecure === true;
      // Before anything is written or sent.
      for (const each of [url, ...moreUrls]) assertSecureCoordinator(each, insecure);
      const enrollmentToken = await enrollmentTokenOf(options);
      const home = options.home ?? defaultHome();
      const drainSignals = handleDrainSignals();
      await mkdir(home, { recursive: true, mode: 0o700 });
      await writePidFile(home);
      try {
        const worker = await startWorker({
          home,
          coordinatorUrl: url,
          moreCoordinatorUrls: moreUrls,
          insecure,
          ...(options.caFile === undefined ? {} : { coordinatorCaFile: options.caFile }),
          ...(enrollmentToken === undefined ? {} : { enrollmentToken }),
          region: options.region,
          zone: options.zone,
          ...(options.nvidiaSmi === undefined ? {} : { nvidiaSmi: options.nvidiaSmi }),
          ...(options.gpuProver === undefined ? {} : { gpuProver: options.gpuProver }),
          ...(options.python === undefined ? {} : { python: options.python }),
          allowUnsandboxed: options.allowUnsandboxed === true,
          jobNetworks: options.jobNetworks !== false,
          ...(options.overlayPorts === undefined ? {} : { overlayPorts: options.overlayPorts }),
          ...(options.publicAddress === undefined ? {} : { publicAddress: options.publicAddress }),
          ...offerSettings(options),
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
        const { offer } = worker;
        if (options.json)
          process.stdout.write(
            JSON.stringify({ deviceId: worker.deviceId, nodeId: worker.nodeId, offer }) + "\n",
          );
        else
          process.stdout.write(
            `worker ${worker.deviceId} serving node ${worker.nodeId} (Ctrl-C to stop)\n` +
              `each rank may use ${offer.memoryMiB} MiB memory, ${offer.cpuCores} CPUs, ` +
              `${offer.pids} pids, ${offer.diskMiB} MiB disk in /job\n`,
          );
        await serveUntilStopped(worker, drainSignals);
      } finally {
        await removePidFile(home);
        drainSignals.dispose();
      }
    });
  registerWorkerDrainCommand(worker, defaultHome);
  registerEnrollTokenCommand(worker);
  registerEnrollTokensCommand(worker);
}

/** The token from `--enroll-token`, `--enroll-token-file` or `$TANDEM_ENROLL_TOKEN`, if any. */
async function enrollmentTokenOf(options: WorkerOptions): Promise<string | undefined> {
  if (options.enrollToken !== undefined && options.enrollTokenFile !== undefined)
    throw new Error("give --enroll-token or --enroll-token-file, not both");
  if (options.enrollTokenFile !== undefined)
    return (await readFile(options.enrollTokenFile, "utf8")).trim();
  return options.enrollToken ?? process.env.TANDEM_ENROLL_TOKEN;
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

/** `--overlay-ports 51820-51899`: an inclusive UDP port range. */
function parsePortRange(value: string): { from: number; to: number } {
  const m = /^(\d{1,5})-(\d{1,5})$/.exec(value);
  const from = Number(m?.[1]);
  const to = Number(m?.[2]);
  if (m === null || from < 1 || to > 65_535 || from > to)
    throw new Error(`--overlay-ports must be a port range such as 51820-51899, got "${value}"`);
  return { from, to };
}
