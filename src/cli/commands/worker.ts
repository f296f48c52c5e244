import { join } from "node:path";
import type { Command } from "commander";
import { startWorker } from "../../worker/main.ts";
import { resolveConnection, tandemHome } from "../context.ts";
import { withClientOptions, type ClientOptions } from "./common.ts";
import { untilSignal } from "./signals.ts";

interface WorkerOptions extends ClientOptions {
  region: string;
  zone: string;
  home?: string;
  nvidiaSmi?: string;
  python?: string;
  allowUnsandboxed?: boolean;
}

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
    .action(async (options: WorkerOptions) => {
      const { url, apiKey } = await resolveConnection(options);
      if (apiKey === undefined) {
        throw new Error(
          "a supplier API key is needed: --api-key, $TANDEM_API_KEY or `tandem login`",
        );
      }
      const worker = await startWorker({
        home: options.home ?? join(tandemHome(), "worker"),
        coordinatorUrl: url,
        apiKey,
        region: options.region,
        zone: options.zone,
        ...(options.nvidiaSmi === undefined ? {} : { nvidiaSmi: options.nvidiaSmi }),
        ...(options.python === undefined ? {} : { python: options.python }),
        allowUnsandboxed: options.allowUnsandboxed === true,
      });
      if (options.json)
        process.stdout.write(
          JSON.stringify({ deviceId: worker.deviceId, nodeId: worker.nodeId }) + "\n",
        );
      else
        process.stdout.write(
          `worker ${worker.deviceId} serving node ${worker.nodeId} (Ctrl-C to stop)\n`,
        );
      const revoked = new Promise<"revoked">((resolve) =>
        worker.link.once("revoked", () => resolve("revoked")),
      );
      const outcome = await Promise.race([untilSignal(), revoked]);
      if (outcome === "revoked") {
        process.stderr.write("this device was revoked by the network; it will not reconnect\n");
        process.exitCode = 3;
        return;
      }
      await worker.stop(`received ${outcome}`);
    });
}
