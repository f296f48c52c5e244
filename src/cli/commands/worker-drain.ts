import type { Command } from "commander";
import { printJson } from "../output.ts";
import { parseIntOption, withJson } from "./common.ts";

/** What a worker tells the coordinator when its supplier drains it. */
export const DRAIN_REASON = "drain requested by the supplier";

/** The signal `tandem worker drain` sends to a running worker. */
export const DRAIN_SIGNAL = "SIGUSR2";

/** How often `tandem worker drain` says it is still waiting, ms. */
const PROGRESS_EVERY_MS = 15_000;

interface DrainOptions {
  home: string;
  timeout: number;
  json?: boolean;
}

/** A refusal of a worker command, with the stable code `--json` prints. */
class WorkerCommandError extends Error {
  constructor(
    readonly code: string,
    message: string,
  ) {
    super(message);
    this.name = "WorkerCommandError";
  }
}

/**
 * `tandem worker drain`: signals the worker running from a home (its pid file) to drain — the
 * coordinator hands its ranks over or lets them finish, then the worker stops — and waits for
 * that worker process to exit.
 */
export function registerWorkerDrainCommand(worker: Command, defaultHome: () => string): void {
  withJson(
    worker
      .command("drain")
      .description(
        "ask the worker running on this machine to hand over its jobs, then stop; waits for it",
      ),
  )
    .option("--home <dir>", "state dir of the worker to drain (default $TANDEM_HOME/worker)")
    .option(
      "--timeout <seconds>",
      "how long to wait for the worker to stop",
      parseIntOption("--timeout"),
      3600,
    )
    .action(async (options: { home?: string; timeout: number; json?: boolean }) => {
      await drain({ ...options, home: options.home ?? defaultHome() });
    });
}

async function drain(options: DrainOptions): Promise<void> {
  const { findRunningWorker } = await import("../../worker/pid-file.ts");
  const found = await findRunningWorker(options.home);
  if (!found.ok) throw new WorkerCommandError(found.code, found.message);
  const { pid } = found;
  const say = (line: string) => {
    if (!options.json) process.stdout.write(line + "\n");
  };
  process.kill(pid, DRAIN_SIGNAL);
  say(
    `asked worker ${pid} to drain; waiting up to ${options.timeout} s for the coordinator to ` +
      `hand over its jobs and for the worker to stop`,
  );
  const startedAt = Date.now();
  const timeoutMs = options.timeout * 1000;
  let nextProgressMs = PROGRESS_EVERY_MS;
  while (isAlive(pid)) {
    const waitedMs = Date.now() - startedAt;
    if (waitedMs >= timeoutMs)
      throw new WorkerCommandError(
        "DRAIN_TIMEOUT",
        `worker ${pid} has not stopped within ${options.timeout} s; it goes on draining ` +
          `(run this again to keep waiting, or stop it with SIGTERM)`,
      );
    if (waitedMs >= nextProgressMs) {
      say(`still draining after ${Math.round(waitedMs / 1000)} s`);
      nextProgressMs += PROGRESS_EVERY_MS;
    }
    await new Promise((resolve) => setTimeout(resolve, Math.min(200, timeoutMs - waitedMs)));
  }
  const waitedMs = Date.now() - startedAt;
  if (options.json) printJson({ pid, drained: true, waitedMs });
  else say(`worker ${pid} drained and stopped after ${(waitedMs / 1000).toFixed(1)} s`);
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "ESRCH") return false;
    throw error;
  }
}
