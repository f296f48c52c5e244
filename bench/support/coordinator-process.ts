/**
 * A coordinator in a process of its own, so a benchmark's load generator never shares its event
 * loop. argv[2] is the coordinator config as JSON. IPC: the child posts `{ type: "listening", url }`,
 * answers "cpu" with `{ type: "cpu", ms }` (its CPU time so far) and closes on "stop".
 *
 * Use `startCoordinatorProcess(config)` from the benchmark.
 */
import { fork, type ChildProcess } from "node:child_process";
import { fileURLToPath } from "node:url";
import type { CoordinatorConfigInput } from "../../src/coordinator/config.ts";
import { startCoordinator } from "../../src/coordinator/main.ts";

export interface CoordinatorProcess {
  url: string;
  /** CPU time (user + system) the coordinator process has used so far, ms. */
  cpuMs(): Promise<number>;
  stop(): Promise<void>;
  /** SIGKILL: the process ends at once, as a crashed machine's would. */
  kill(): Promise<void>;
}

/** `cpuProfileDir`: write a V8 CPU profile of the coordinator there (`node --cpu-prof`). */
export async function startCoordinatorProcess(
  config: CoordinatorConfigInput,
  options: { cpuProfileDir?: string | undefined } = {},
): Promise<CoordinatorProcess> {
  const profile =
    options.cpuProfileDir === undefined
      ? []
      : ["--cpu-prof", `--cpu-prof-dir=${options.cpuProfileDir}`];
  const child = fork(fileURLToPath(import.meta.url), [JSON.stringify(config)], {
    execArgv: ["--import", "tsx", ...profile],
  });
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  const { url } = await reply<{ url: string }>(child, "listening");
  return {
    url,
    cpuMs: async () => {
      child.send("cpu");
      return (await reply<{ ms: number }>(child, "cpu")).ms;
    },
    stop: async () => {
      child.send("stop");
      await exited;
    },
    kill: async () => {
      child.kill("SIGKILL");
      await exited;
    },
  };
}

function reply<T>(child: ChildProcess, type: string): Promise<T> {
  return new Promise((resolve, reject) => {
    const onExit = (code: number | null) =>
      reject(new Error(`coordinator process exited (${code}) before "${type}"`));
    const onMessage = (message: { type?: string }) => {
      if (message.type !== type) return;
      child.off("message", onMessage);
      child.off("exit", onExit);
      resolve(message as T);
    };
    child.on("message", onMessage);
    child.once("exit", onExit);
  });
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const coordinator = await startCoordinator(
    JSON.parse(process.argv[2] ?? "{}") as CoordinatorConfigInput,
  );
  process.send?.({ type: "listening", url: coordinator.url });
  process.on("message", (message) => {
    if (message === "cpu") {
      const { user, system } = process.cpuUsage();
      process.send?.({ type: "cpu", ms: (user + system) / 1000 });
    }
    if (message === "stop") void coordinator.close().then(() => process.exit(0));
  });
}
