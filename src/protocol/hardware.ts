import { z } from "zod";
import { NetworkCapability } from "./cluster-network.ts";
import { freeText } from "./text.ts";

/** One GPU as `nvidia-smi --query-gpu` reports it. Raw claims: the coordinator maps `name` to the catalog. */
export const GpuReport = z.strictObject({
  index: z.number().int().min(0).max(63),
  /** `GPU-<uuid>`, or `MIG-…` for a MIG instance. */
  uuid: z
    .string()
    .min(1)
    .max(80)
    .regex(/^[A-Za-z0-9][A-Za-z0-9._:/-]*$/, "expected a GPU UUID"),
  name: freeText(128).min(1),
  memoryTotalMiB: z.number().int().min(0).max(16_777_216),
  driverVersion: z
    .string()
    .max(64)
    .regex(/^[A-Za-z0-9._+-]*$/, "expected a driver version"),
  /** e.g. `00000000:18:00.0`. */
  pciBusId: z
    .string()
    .max(64)
    .regex(/^[0-9A-Fa-f:.]*$/, "expected a PCI bus id"),
  utilizationPct: z.number().min(0).max(100).nullable(),
  temperatureC: z.number().min(-50).max(200).nullable(),
});
export type GpuReport = z.infer<typeof GpuReport>;

const SIZE = /^\s*(\d+(?:\.\d+)?)\s*([KMGT]?)(?:i?B)?\s*$/i;
const MIB_PER_UNIT: Record<string, number> = { K: 1 / 1024, M: 1, G: 1024, T: 1024 * 1024 };

/**
 * A size in MiB, as people type it (worker config, CLI flags): a number (MiB) or text with a unit, "512MiB", "8G", "1.5TiB", "20GB" (K, M, G and T
 * are powers of 1024, as in `docker --memory`; no unit means MiB). Rounded down to whole MiB.
 */
export const SizeMiB = z.union([z.number(), z.string()]).transform((value, ctx) => {
  if (typeof value === "number") return Math.floor(value);
  const m = SIZE.exec(value);
  if (m === null) {
    ctx.addIssue({ code: "custom", message: 'expected a size such as "512MiB", "8GiB" or "2T"' });
    return z.NEVER;
  }
  return Math.floor(Number(m[1]) * (MIB_PER_UNIT[(m[2] ?? "").toUpperCase()] ?? 1));
});

/**
 * Resource limits of one rank: what a worker offers per node (its hardware report), what a deploy
 * asks (each field optional there) and what the rank then runs with. Memory and disk in MiB,
 * CPU as cores (1.5 = 150 ms of CPU per 100 ms), pids = tasks (processes and threads) at once.
 */
export const RankLimits = z.strictObject({
  memoryMiB: z.number().int().min(64).max(1_073_741_824),
  cpuCores: z.number().min(0.1).max(4096),
  pids: z.number().int().min(16).max(4_194_304),
  diskMiB: z.number().int().min(16).max(1_073_741_824),
});
export type RankLimits = z.infer<typeof RankLimits>;
/** A deploy's ask: any subset of the limits, each at most what the chosen nodes offer. */
export const RankLimitsAsk = RankLimits.partial();
export type RankLimitsAsk = z.infer<typeof RankLimitsAsk>;
/** The limit a rank ended by exceeding (CPU is throttled, never exceeded). */
export const ExceededLimit = z.enum(["memory", "pids", "disk"]);
export type ExceededLimit = z.infer<typeof ExceededLimit>;

/**
 * An engine a cluster kind runs on: torch, dask and ray are Python modules the worker's `python`
 * can import; podman runs `container` clusters. `batch` needs none.
 */
export const Engine = z.enum(["torch", "dask", "ray", "podman"]);
export type Engine = z.infer<typeof Engine>;

/** What a worker's hardware probe finds on its machine. Sizes in MiB. */
export const HardwareReport = z.strictObject({
  cpu: z.strictObject({
    model: freeText(256),
    cores: z.number().int().min(1).max(4096),
    /** `os.arch()`: x64, arm64, … */
    arch: z
      .string()
      .max(32)
      .regex(/^[a-z0-9_]*$/, "expected an architecture name"),
  }),
  memoryTotalMiB: z.number().int().min(0).max(1_073_741_824),
  diskFreeMiB: z.number().int().min(0).max(1_073_741_824),
  os: z.strictObject({
    /** `os.platform()`: linux, darwin, … */
    platform: z
      .string()
      .max(32)
      .regex(/^[a-z0-9_]*$/, "expected a platform name"),
    release: freeText(128),
    distro: freeText(128),
  }),
  gpus: z.array(GpuReport).max(64),
  /** Container runtimes the worker can run `container` clusters with (absent: none). */
  runtimes: z
    .array(z.enum(["podman"]))
    .max(4)
    .optional(),
  /**
   * The engines this worker found at start (absent: a worker from before engines, whose engines are
   * unknown; placement assumes it has them, as it did before).
   */
  engines: z.array(Engine).max(8).optional(),
  /** What every rank on this node may use at most (absent: a worker from before limits). */
  limits: RankLimits.optional(),
  /** What it can do for job networks (absent: a worker from before them, which cannot). */
  network: NetworkCapability.optional(),
});
export type HardwareReport = z.infer<typeof HardwareReport>;
