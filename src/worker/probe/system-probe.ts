import { readFile, statfs } from "node:fs/promises";
import os from "node:os";
import { HardwareReport } from "../../protocol/hardware.ts";
import { queryNvidiaSmi } from "./nvidia-smi.ts";

/** Port: what the worker knows about its machine. Tests hand in a fake. */
export interface HardwareProbe {
  probe(): Promise<HardwareReport>;
}

/** Options of `probeHardware`. */
export interface ProbeHardwareOptions {
  /** Directory jobs write to; `diskFreeMiB` is what unprivileged users may still write there. */
  workDir: string;
  /** nvidia-smi executable name or path. Default "nvidia-smi" on PATH. */
  nvidiaSmi?: string;
  /** Timeout for nvidia-smi in ms. Default 10000. */
  nvidiaSmiTimeoutMs?: number;
  /** Receives why GPUs could not be read (e.g. no driver loaded); the report then lists none. */
  onWarning?: (message: string) => void;
  /** os-release file for the distro name. Default "/etc/os-release". */
  osReleasePath?: string;
}

const MIB = 1024 * 1024;

/** PRETTY_NAME from os-release(5) text, unquoted; "" when absent. */
export function parseOsRelease(text: string): string {
  for (const line of text.split(/\r?\n/)) {
    const m = /^PRETTY_NAME=(.*)$/.exec(line.trim());
    if (!m) continue;
    const value = (m[1] ?? "").trim();
    const quoted = /^(["'])(.*)\1$/.exec(value);
    return (quoted ? (quoted[2] ?? "") : value).replace(/\\(["'$`\\])/g, "$1");
  }
  return "";
}

async function readDistro(path: string): Promise<string> {
  try {
    return parseOsRelease(await readFile(path, "utf8"));
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "ENOENT") return "";
    throw error;
  }
}

async function diskFreeMiB(dir: string): Promise<number> {
  const s = await statfs(dir);
  return Math.floor((s.bavail * s.bsize) / MIB);
}

/** Reads this machine's CPU, memory, disk, OS and NVIDIA GPUs; the result passes HardwareReport. */
export async function probeHardware(opts: ProbeHardwareOptions): Promise<HardwareReport> {
  const [smi, diskFree, distro] = await Promise.all([
    queryNvidiaSmi({
      ...(opts.nvidiaSmi === undefined ? {} : { command: opts.nvidiaSmi }),
      ...(opts.nvidiaSmiTimeoutMs === undefined ? {} : { timeoutMs: opts.nvidiaSmiTimeoutMs }),
    }),
    diskFreeMiB(opts.workDir),
    readDistro(opts.osReleasePath ?? "/etc/os-release"),
  ]);
  if (smi.warning !== undefined) opts.onWarning?.(smi.warning);
  const cpus = os.cpus();
  // os.cpus() is empty where /proc/cpuinfo is hidden (some containers); availableParallelism isn't.
  const cores = cpus.length > 0 ? cpus.length : os.availableParallelism();
  return HardwareReport.parse({
    cpu: { model: (cpus[0]?.model ?? "").trim().slice(0, 256), cores, arch: os.arch() },
    memoryTotalMiB: Math.floor(os.totalmem() / MIB),
    diskFreeMiB: diskFree,
    os: {
      platform: os.platform(),
      release: os.release().slice(0, 128),
      distro: distro.slice(0, 128),
    },
    gpus: smi.gpus,
  });
}

export function systemHardwareProbe(opts: ProbeHardwareOptions): HardwareProbe {
  return { probe: () => probeHardware(opts) };
}
