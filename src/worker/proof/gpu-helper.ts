import { spawn, type ChildProcessWithoutNullStreams } from "node:child_process";
import { fileURLToPath } from "node:url";
import { HelperCommitLine, HelperRevealLine, type HelperProveRequest } from "./helper-protocol.ts";

/**
 * Where the worker's own GPU prover helper will be (a CUDA program not built yet: until it ships,
 * a worker without `--gpu-prover` answers each GPU's proof with an error saying so).
 */
export const DEFAULT_GPU_PROVER = fileURLToPath(
  new URL("../../../native/gpu-prover/tandem-gpu-prover", import.meta.url),
);

/** Where the GPU prover helper is and how long it may take (see helper-protocol.ts). */
export interface GpuHelperOptions {
  /** The helper executable: a path, or a name looked up on PATH. */
  command: string;
  /**
   * `command` is the default, not configured (`--gpu-prover`): a missing one then means this
   * worker has no helper yet, said as such.
   */
  isDefault: boolean;
  /** Longest wait for each of the helper's answers (commit, reveal), ms; it is killed after. */
  timeoutMs: number;
  /** The helper's environment. Default: the worker's. */
  env?: NodeJS.ProcessEnv;
}

/** A device's commitment, or why there is none. */
export type HelperCommit =
  | { ok: true; root: string; computeMs: number; allocatedMiB: number }
  | { ok: false; error: string };

/** One revealed cell as the helper gave it. */
export type HelperRevealedCell = Extract<HelperRevealLine, { reveal: unknown }>["reveal"][number];

/** A line from the helper, or why none will come. */
type Next = { line: string } | { failure: string };

/** One line is at most this long (a reveal of 4096 full leaves is about 13 MB). */
const MAX_LINE_CHARS = 32 * 1024 * 1024;
/** After stdin is closed, the helper is killed if it has not exited within this. */
const EXIT_GRACE_MS = 5_000;
const MAX_ERROR_CHARS = 500;

/**
 * One helper process proving one GPU (helper-protocol.ts). Every way it can go wrong (missing,
 * not executable, exiting, printing something else, silent past `timeoutMs`) becomes a one-line
 * reason and a killed process, never an exception: the worker reports it as that device's error.
 */
export class GpuHelperProcess {
  private readonly child: ChildProcessWithoutNullStreams;
  private readonly lines: string[] = [];
  private buffer = "";
  private stderrTail = "";
  private failure: string | undefined;
  private waiter: ((next: Next) => void) | undefined;

  private constructor(private readonly options: GpuHelperOptions) {
    this.child = spawn(options.command, [], {
      stdio: ["pipe", "pipe", "pipe"],
      env: options.env ?? process.env,
    });
    this.child.stdout.setEncoding("utf8");
    this.child.stdout.on("data", (chunk: string) => this.onData(chunk));
    this.child.stderr.setEncoding("utf8");
    this.child.stderr.on("data", (chunk: string) => {
      this.stderrTail = (this.stderrTail + chunk).slice(-2000);
    });
    this.child.stdin.on("error", () => {
      // EPIPE from a helper that already exited: its exit says why.
    });
    this.child.on("error", (error: NodeJS.ErrnoException) => this.fail(this.spawnFailure(error)));
    this.child.on("close", (code, signal) => this.fail(this.exitFailure(code, signal)));
  }

  /** Starts a helper and sends it `request`; `commit()` waits for its answer. */
  static start(options: GpuHelperOptions, request: HelperProveRequest): GpuHelperProcess {
    const helper = new GpuHelperProcess(options);
    helper.write(request);
    return helper;
  }

  /** The helper's commitment, or why there is none (the helper is then killed). */
  async commit(): Promise<HelperCommit> {
    const next = await this.next();
    if ("failure" in next) return { ok: false, error: next.failure };
    const parsed = this.parse(next.line, HelperCommitLine);
    if (!parsed.ok) return parsed;
    if ("error" in parsed.value) {
      this.kill();
      return { ok: false, error: clip(parsed.value.error) };
    }
    return { ok: true, ...parsed.value.commit };
  }

  /** Asks for `cells` and closes the helper: the cells revealed, or why none are. */
  async reveal(
    cells: readonly { row: number; col: number }[],
  ): Promise<{ ok: true; cells: HelperRevealedCell[] } | { ok: false; error: string }> {
    this.write({ open: cells.map(({ row, col }) => ({ row, col })) });
    const next = await this.next();
    this.close();
    if ("failure" in next) return { ok: false, error: next.failure };
    const parsed = this.parse(next.line, HelperRevealLine);
    if (!parsed.ok) return parsed;
    if ("error" in parsed.value) return { ok: false, error: clip(parsed.value.error) };
    return { ok: true, cells: parsed.value.reveal };
  }

  /** Closes its stdin (the helper frees the device and exits); killed if it lingers. */
  close(): void {
    if (this.failure !== undefined) return;
    this.child.stdin.end();
    setTimeout(() => this.kill(), EXIT_GRACE_MS).unref();
  }

  kill(): void {
    if (this.child.exitCode === null && this.child.signalCode === null) this.child.kill("SIGKILL");
  }

  private write(message: object): void {
    if (this.failure === undefined && this.child.stdin.writable)
      this.child.stdin.write(`${JSON.stringify(message)}\n`);
  }

  private parse<T>(
    line: string,
    schema: { safeParse(value: unknown): { success: true; data: T } | { success: false } },
  ): { ok: true; value: T } | { ok: false; error: string } {
    let value: unknown;
    try {
      value = JSON.parse(line);
    } catch {
      value = undefined;
    }
    const parsed = schema.safeParse(value);
    if (parsed.success) return { ok: true, value: parsed.data };
    this.kill();
    return {
      ok: false,
      error: clip(
        `GPU prover helper answered outside its protocol: ${JSON.stringify(line.slice(0, 120))}`,
      ),
    };
  }

  private next(): Promise<Next> {
    const line = this.lines.shift();
    if (line !== undefined) return Promise.resolve({ line });
    if (this.failure !== undefined) return Promise.resolve({ failure: this.failure });
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.fail(`GPU prover helper gave no answer within ${this.options.timeoutMs} ms (killed)`);
      }, this.options.timeoutMs);
      this.waiter = (next) => {
        clearTimeout(timer);
        this.waiter = undefined;
        resolve(next);
      };
    });
  }

  private onData(chunk: string): void {
    this.buffer += chunk;
    let newline: number;
    while ((newline = this.buffer.indexOf("\n")) >= 0) {
      const line = this.buffer.slice(0, newline).trim();
      this.buffer = this.buffer.slice(newline + 1);
      if (line === "") continue;
      if (this.waiter !== undefined) this.waiter({ line });
      else this.lines.push(line);
    }
    if (this.buffer.length > MAX_LINE_CHARS)
      this.fail(`GPU prover helper printed a line over ${MAX_LINE_CHARS} characters (killed)`);
  }

  /** The first failure sticks; the helper is killed and a waiting read gets it. */
  private fail(reason: string): void {
    if (this.failure !== undefined) return;
    this.failure = clip(reason);
    this.kill();
    this.waiter?.({ failure: this.failure });
  }

  private spawnFailure(error: NodeJS.ErrnoException): string {
    const { command, isDefault } = this.options;
    if (error.code === "ENOENT")
      return isDefault
        ? `this worker has no GPU prover helper yet (${command} not found; --gpu-prover names one)`
        : `GPU prover helper ${command} not found`;
    if (error.code === "EACCES") return `GPU prover helper ${command} is not executable`;
    return `GPU prover helper ${command} could not start: ${error.message}`;
  }

  private exitFailure(code: number | null, signal: NodeJS.Signals | null): string {
    const how = signal === null ? `exited with code ${code}` : `was killed by ${signal}`;
    const said = lastLine(this.stderrTail);
    return `GPU prover helper ${how} before answering${said === "" ? "" : `: ${said}`}`;
  }
}

function lastLine(text: string): string {
  const lines = text.split(/\r?\n/).filter((l) => l.trim() !== "");
  return lines[lines.length - 1]?.trim() ?? "";
}

function clip(text: string): string {
  return text.length <= MAX_ERROR_CHARS ? text : `${text.slice(0, MAX_ERROR_CHARS - 1)}…`;
}
