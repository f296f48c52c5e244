/**
 * The host tools job networks are made with (iproute2's `ip`, `nft`, `sysctl`), run as child
 * processes in the worker's own network namespace, and the one error type of src/worker/network.
 */
import { spawn } from "node:child_process";
import { HOST_PATH } from "../runtime/launch.ts";

/**
 * Why a job network could not be made or removed. `INVALID_NETWORK_OPTIONS`: the caller's input
 * (nothing was changed); `NETWORK_SETUP_FAILED` / `NETWORK_CLEANUP_FAILED`: the host refused.
 */
export type JobNetworkErrorCode =
  "INVALID_NETWORK_OPTIONS" | "NETWORK_SETUP_FAILED" | "NETWORK_CLEANUP_FAILED";

export class JobNetworkError extends Error {
  readonly code: JobNetworkErrorCode;

  constructor(code: JobNetworkErrorCode, message: string, options?: { cause: unknown }) {
    super(message, options);
    this.name = "JobNetworkError";
    this.code = code;
  }
}

/** A tool that exited non-zero (or could not start), with what it printed on stderr. */
export class CommandFailed extends Error {
  readonly stderr: string;

  constructor(
    argv: readonly string[],
    detail: string,
    stderr: string,
    options?: { cause: unknown },
  ) {
    super(`${argv.join(" ")}: ${detail}${stderr === "" ? "" : `: ${stderr.trim()}`}`, options);
    this.name = "CommandFailed";
    this.stderr = stderr;
  }
}

/** Runs `argv` to its end (with `input` on stdin when given); resolves with its stdout. */
export function runCommand(argv: readonly string[], input?: string): Promise<string> {
  const [file, ...args] = argv;
  if (file === undefined) throw new Error("empty command");
  return new Promise((resolve, reject) => {
    const child = spawn(file, args, {
      stdio: [input === undefined ? "ignore" : "pipe", "pipe", "pipe"],
      env: { PATH: HOST_PATH, LANG: "C" },
    });
    let stdout = "";
    let stderr = "";
    child.stdout!.setEncoding("utf8").on("data", (d: string) => (stdout += d));
    child.stderr!.setEncoding("utf8").on("data", (d: string) => (stderr += d));
    child.once("error", (error) =>
      reject(new CommandFailed(argv, error.message, "", { cause: error })),
    );
    child.once("close", (code, signal) => {
      if (code === 0) resolve(stdout);
      else reject(new CommandFailed(argv, `exited ${code ?? signal}`, stderr));
    });
    child.stdin?.end(input);
  });
}

/**
 * Runs a removal and answers false when the thing was already gone (`pattern` matches stderr),
 * true when it removed it; throws on any other failure.
 */
export async function removeIfPresent(argv: readonly string[], gone: RegExp): Promise<boolean> {
  try {
    await runCommand(argv);
    return true;
  } catch (error) {
    if (error instanceof CommandFailed && gone.test(error.stderr)) return false;
    throw error;
  }
}

/** `ip` with `args`. */
export const ip = (...args: string[]): Promise<string> => runCommand(["ip", ...args]);

/** Runs `ip` commands (without the `ip`) in one process, in namespace `netns` when given. */
export function ipBatch(netns: string | undefined, commands: readonly string[]): Promise<string> {
  const where = netns === undefined ? [] : ["-n", netns];
  return runCommand(["ip", ...where, "-batch", "-"], commands.map((c) => `${c}\n`).join(""));
}

/** Writes sysctls (`name=value`) in the network namespace at `netnsPath` (undefined: this one). */
export function sysctl(netnsPath: string | undefined, ...settings: string[]): Promise<string> {
  const enter = netnsPath === undefined ? [] : ["nsenter", `--net=${netnsPath}`, "--"];
  // -e: a kernel without IPv6 has no net.ipv6.* keys, and nothing to disable there.
  return runCommand([...enter, "sysctl", "-q", "-e", "-w", ...settings]);
}
