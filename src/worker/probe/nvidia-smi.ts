import { execFile, type ExecFileException } from "node:child_process";
import { GpuReport } from "../../protocol/hardware.ts";

/** The fields asked of `nvidia-smi --query-gpu`, in the order the CSV columns come back. */
export const NVIDIA_SMI_QUERY_FIELDS = [
  "index",
  "uuid",
  "name",
  "memory.total",
  "driver_version",
  "pci.bus_id",
  "utilization.gpu",
  "temperature.gpu",
] as const;

export const NVIDIA_SMI_ARGS: readonly string[] = [
  `--query-gpu=${NVIDIA_SMI_QUERY_FIELDS.join(",")}`,
  "--format=csv,noheader,nounits",
];

/** A line of nvidia-smi output that is not what `NVIDIA_SMI_ARGS` produces. */
export class NvidiaSmiParseError extends Error {
  /** 1-based line number in the output. */
  readonly line: number;

  constructor(line: number, message: string, options?: { cause: unknown }) {
    super(`nvidia-smi output line ${line}: ${message}`, options);
    this.name = "NvidiaSmiParseError";
    this.line = line;
  }
}

const INTEGER = /^\d+$/;
const NUMBER = /^\d+(\.\d+)?$/;

/**
 * Telemetry fields are optional: nvidia-smi prints a bracketed reason ("[N/A]", "[Not Supported]",
 * "[Unknown Error]", ...) where a card or a MIG/vGPU setup cannot report them.
 */
function telemetry(value: string, field: string, line: number): number | null {
  if (value.startsWith("[") && value.endsWith("]")) return null;
  if (!NUMBER.test(value))
    throw new NvidiaSmiParseError(line, `${field} is not a number: ${value}`);
  return Number(value);
}

/**
 * Parses the output of `nvidia-smi` run with `NVIDIA_SMI_ARGS` (`--format=csv,noheader,nounits`:
 * one GPU per line, fields separated by ", "). Blank lines are skipped; any other line that does
 * not have exactly the queried fields with valid values throws `NvidiaSmiParseError`.
 */
export function parseNvidiaSmiCsv(stdout: string): GpuReport[] {
  const gpus: GpuReport[] = [];
  const lines = stdout.split(/\r?\n/);
  for (const [i, raw] of lines.entries()) {
    const line = i + 1;
    if (raw.trim() === "") continue;
    const fields = raw.split(",").map((f) => f.trim());
    if (fields.length !== NVIDIA_SMI_QUERY_FIELDS.length) {
      throw new NvidiaSmiParseError(
        line,
        `expected ${NVIDIA_SMI_QUERY_FIELDS.length} fields, got ${fields.length}: ${raw}`,
      );
    }
    const [index, uuid, name, memoryTotal, driverVersion, pciBusId, utilization, temperature] =
      fields as [string, string, string, string, string, string, string, string];
    if (!INTEGER.test(index))
      throw new NvidiaSmiParseError(line, `index is not an integer: ${index}`);
    if (!INTEGER.test(memoryTotal)) {
      throw new NvidiaSmiParseError(line, `memory.total is not an integer MiB: ${memoryTotal}`);
    }
    const parsed = GpuReport.safeParse({
      index: Number(index),
      uuid,
      name,
      memoryTotalMiB: Number(memoryTotal),
      driverVersion,
      pciBusId,
      utilizationPct: telemetry(utilization, "utilization.gpu", line),
      temperatureC: telemetry(temperature, "temperature.gpu", line),
    });
    if (!parsed.success) {
      throw new NvidiaSmiParseError(line, `${parsed.error.message}: ${raw}`, {
        cause: parsed.error,
      });
    }
    gpus.push(parsed.data);
  }
  return gpus;
}

/** Options of `queryNvidiaSmi`. */
export interface NvidiaSmiOptions {
  /** Executable name (looked up on PATH) or path. Default "nvidia-smi". */
  command?: string;
  /** Kill nvidia-smi after this many ms; a hung driver can block it indefinitely. Default 10000. */
  timeoutMs?: number;
  /** Environment of the child; its PATH is where `command` is looked up. Default `process.env`. */
  env?: NodeJS.ProcessEnv;
}

/**
 * What `queryNvidiaSmi` found. `gpus` is empty on a machine without NVIDIA GPUs. `warning` says why
 * when nvidia-smi exists but could not report (no driver loaded, timeout, not executable): the
 * machine is then treated as CPU-only, and the caller decides whether to log or refuse.
 */
export interface NvidiaSmiResult {
  gpus: GpuReport[];
  warning?: string;
}

const DEFAULT_TIMEOUT_MS = 10_000;

function firstLine(text: string): string {
  return (
    text
      .split(/\r?\n/)
      .map((l) => l.trim())
      .find((l) => l !== "") ?? ""
  );
}

function failureReason(
  command: string,
  timeoutMs: number,
  error: ExecFileException,
  output: string,
): string {
  const prefix = `${command} (reporting no GPUs)`;
  if (error.killed === true) return `${prefix}: did not finish within ${timeoutMs} ms`;
  if (error.signal) return `${prefix}: killed by ${error.signal}`;
  const how =
    typeof error.code === "number"
      ? `exited with code ${error.code}`
      : `failed (${String(error.code)})`;
  return `${prefix}: ${how}: ${firstLine(output) || error.message}`;
}

/**
 * Runs nvidia-smi and parses its GPU list. A missing binary (ENOENT) means a CPU-only machine:
 * `{ gpus: [] }` without warning. nvidia-smi failing (it prints "NVIDIA-SMI has failed because it
 * couldn't communicate with the NVIDIA driver..." to stdout and exits 9 when no driver is loaded)
 * gives `{ gpus: [], warning }`. Output that does not parse rejects with `NvidiaSmiParseError`:
 * a successful nvidia-smi printing something else is a bug to see, not a machine without GPUs.
 */
export function queryNvidiaSmi(opts: NvidiaSmiOptions = {}): Promise<NvidiaSmiResult> {
  const command = opts.command ?? "nvidia-smi";
  const timeoutMs = opts.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  return new Promise((resolve, reject) => {
    execFile(
      command,
      NVIDIA_SMI_ARGS,
      {
        timeout: timeoutMs,
        killSignal: "SIGKILL",
        env: opts.env ?? process.env,
        encoding: "utf8",
        windowsHide: true,
      },
      (error, stdout, stderr) => {
        if (error) {
          if (error.code === "ENOENT") resolve({ gpus: [] });
          else
            resolve({
              gpus: [],
              warning: failureReason(command, timeoutMs, error, `${stdout}\n${stderr}`),
            });
          return;
        }
        try {
          resolve({ gpus: parseNvidiaSmiCsv(stdout) });
        } catch (parseError) {
          reject(parseError instanceof Error ? parseError : new Error(String(parseError)));
        }
      },
    );
  });
}
