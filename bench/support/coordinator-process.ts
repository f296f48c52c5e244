/**
 * A coordinator in a process of its own, so a benchmark's load generator never shares its event
 * loop. argv[2] is the coordinator config as JSON; posts `{ type: "listening", url }` over IPC and
 * closes on the message "stop".
 *
 * Use `startCoordinatorProcess(config)` from the benchmark.
 */
import { fork } from "node:child_process";
import { fileURLToPath } from "node:url";
import { startCoordinator } from "../../src/coordinator/main.ts";
import type { CoordinatorConfigInput } from "../../src/coordinator/config.ts";

export interface CoordinatorProcess {
  url: string;
  stop(): Promise<void>;
}

/** `cpuProfileDir`: write a V8 CPU profile of the coordinator there (`node --cpu-prof`). */
export function startCoordinatorProcess(
  config: CoordinatorConfigInput,
  options: { cpuProfileDir?: string | undefined } = {},
): Promise<CoordinatorProcess> {
  const profile = options.cpuProfileDir === undefined ? [] : ["--cpu-prof", `--cpu-prof-dir=${options.cpuProfileDir}`];
  const child = fork(fileURLToPath(import.meta.url), [JSON.stringify(config)], {
    execArgv: ["--import", "tsx", ...profile],
  });
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  return new Promise((resolve, reject) => {
    child.once("exit", (code) => reject(new Error(`coordinator process exited (${code}) before listening`)));
    child.once("message", (message: { url: string }) =>
      resolve({
        url: message.url,
        stop: async () => {
          child.send("stop");
          await exited;
        },
      }),
    );
  });
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const coordinator = await startCoordinator(JSON.parse(process.argv[2] ?? "{}") as CoordinatorConfigInput);
  process.send?.({ type: "listening", url: coordinator.url });
  process.on("message", (message) => {
    if (message === "stop") void coordinator.close().then(() => process.exit(0));
  });
}
