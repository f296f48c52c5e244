import { spawn, type ChildProcess } from "node:child_process";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import { SMALL_PROOF_POLICY } from "../../src/coordinator/config.ts";

export const TANDEM_BIN = fileURLToPath(new URL("../../bin/tandem.js", import.meta.url));
export const NVIDIA_SMI_FIXTURES = fileURLToPath(
  new URL("../fixtures/nvidia-smi/", import.meta.url),
);
/**
 * The fixture GPU prover helper (a fake at the GPU port: the exact product on the CPU, reporting
 * the time the fixture nvidia-smi's card would take): `--gpu-prover` for a worker whose GPUs must
 * prove themselves.
 */
export const GPU_PROVER_FIXTURE = fileURLToPath(
  new URL("../fixtures/gpu-prover/gpu-prover", import.meta.url),
);

/** A `tandem` command running as a real child process, with its output kept line by line. */
export interface TandemProcess {
  readonly child: ChildProcess;
  readonly stdout: string[];
  readonly stderr: string[];
  /** Resolves with the first stdout line matching `pattern` (past or future). */
  line(pattern: RegExp, timeoutMs?: number): Promise<string>;
  /** Resolves with the exit code (or signal name) once the process has ended. */
  readonly exited: Promise<number | NodeJS.Signals>;
  kill(signal?: NodeJS.Signals): Promise<number | NodeJS.Signals>;
}

/** How long `kill` waits for a process to end on its signal before it sends SIGKILL, ms. */
const KILL_AFTER_MS = 15_000;

/**
 * Starts `tandem args…`; `via` runs it through another command first (e.g. `ip netns exec NS`,
 * which execs it, so the child is still the tandem process).
 */
export function spawnTandem(
  args: string[],
  env: Record<string, string>,
  { via = [] }: { via?: readonly string[] } = {},
): TandemProcess {
  const [command, ...prefix] = [...via, process.execPath];
  const child = spawn(command, [...prefix, TANDEM_BIN, ...args], {
    env: { PATH: process.env.PATH ?? "/usr/bin:/bin", HOME: process.env.HOME ?? "/tmp", ...env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  const stdout: string[] = [];
  const stderr: string[] = [];
  const waiters: Array<{ pattern: RegExp; resolve: (line: string) => void }> = [];
  createInterface({ input: child.stdout }).on("line", (line) => {
    stdout.push(line);
    for (const waiter of waiters.filter((w) => w.pattern.test(line))) {
      waiters.splice(waiters.indexOf(waiter), 1);
      waiter.resolve(line);
    }
  });
  createInterface({ input: child.stderr }).on("line", (line) => stderr.push(line));
  const exited = new Promise<number | NodeJS.Signals>((resolve) =>
    child.once("close", (code, signal) => resolve(code ?? signal ?? -1)),
  );
  return {
    child,
    stdout,
    stderr,
    exited,
    line(pattern, timeoutMs = 30_000) {
      const seen = stdout.find((l) => pattern.test(l));
      if (seen !== undefined) return Promise.resolve(seen);
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => {
          reject(
            new Error(
              `no line matching ${pattern} within ${timeoutMs} ms; stderr:\n${stderr.join("\n")}`,
            ),
          );
        }, timeoutMs);
        waiters.push({ pattern, resolve: (line) => (clearTimeout(timer), resolve(line)) });
        void exited.then((code) => {
          clearTimeout(timer);
          reject(
            new Error(
              `process exited (${code}) before printing ${pattern}; stderr:\n${stderr.join("\n")}`,
            ),
          );
        });
      });
    },
    async kill(signal = "SIGTERM") {
      if (child.exitCode === null && child.signalCode === null) {
        child.kill(signal);
        // A stopped process keeps a SIGTERM pending until it runs again; one that will not end
        // (hung, or ignoring the signal) is killed outright, so a test never waits on it forever.
        child.kill("SIGCONT");
        const killer = setTimeout(() => child.kill("SIGKILL"), KILL_AFTER_MS);
        void exited.then(() => clearTimeout(killer));
      }
      return exited;
    },
  };
}

/** Polls `check` until it answers a value, for events seen only through an API. */
export async function eventually<T>(
  check: () => Promise<T | undefined>,
  what: string,
  timeoutMs = 30_000,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await check();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

/**
 * `tandem coordinator` flags for small proofs of hardware (SMALL_PROOF_POLICY): the tests' workers
 * prove on this CPU, GPUs through a fixture prover, in milliseconds.
 */
export const SMALL_PROOF_FLAGS: readonly string[] = [
  ...["--proof-gpu-target-ms", String(SMALL_PROOF_POLICY.gpuTargetMs)],
  ...["--proof-gpu-k", String(SMALL_PROOF_POLICY.gpuK)],
  ...["--proof-cpu-work", `${SMALL_PROOF_POLICY.cpuN}x${SMALL_PROOF_POLICY.cpuK}`],
  ...["--proof-cpu-core-gflops", String(SMALL_PROOF_POLICY.cpuCoreGflops)],
  ...["--proof-overhead-ms", String(SMALL_PROOF_POLICY.overheadMs)],
];

/** `tandem coordinator` on a free port with its state in `home`: the process and its URL. */
export async function startCoordinatorProcess(
  home: string,
  /** More `tandem coordinator` flags. */
  flags: readonly string[] = [],
): Promise<{ coordinator: TandemProcess; url: string }> {
  const coordinator = spawnTandem(
    ["coordinator", "--port", "0", "--json", "--log-level", "warn", ...SMALL_PROOF_FLAGS, ...flags],
    { TANDEM_HOME: home },
  );
  const url = (JSON.parse(await coordinator.line(/^\{/)) as { url: string }).url;
  return { coordinator, url };
}
