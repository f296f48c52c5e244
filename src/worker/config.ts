import { z } from "zod";
import { EnrollmentToken } from "../protocol/enrollment.ts";
import { SizeMiB } from "../protocol/hardware.ts";
import { assertSecureCoordinator, httpUrlOf } from "./coordinator-trust.ts";

const CoordinatorUrl = z.url({ protocol: /^(https?|wss?)$/ }).transform(httpUrlOf);

/** Worker settings, parsed once at start; a bad value fails fast naming its field. */
export const WorkerConfig = z.strictObject({
  /** State directory: the device key, the ids, job work dirs. */
  home: z.string().min(1),
  /** The coordinator: http(s), or ws(s) meaning the same (the worker channel is on its port). */
  coordinatorUrl: CoordinatorUrl,
  /**
   * Other replicas of the same coordinator (DESIGN.md §7): when the link to one ends, the worker
   * connects to the next in the list (`coordinatorUrl` first), so a lost replica costs it a
   * reconnect, not its jobs.
   */
  moreCoordinatorUrls: z.array(CoordinatorUrl).max(16).default([]),
  /** Talk plain http/ws to a coordinator that is not on this machine (coordinator-trust.ts). */
  insecure: z.boolean().default(false),
  /** PEM file of the CA to trust for an https coordinator, instead of Node's roots. */
  coordinatorCaFile: z.string().min(1).optional(),
  /**
   * The supplier's single-use enrollment token (`tandem worker enroll-token`): needed only until
   * the device has registered, which then signs its own requests. Never written to disk.
   */
  enrollmentToken: EnrollmentToken.optional(),
  region: z.string().min(1).max(64),
  zone: z.string().min(1).max(64),
  /** nvidia-smi executable (name on PATH or path). */
  nvidiaSmi: z.string().default("nvidia-smi"),
  /**
   * The GPU prover helper (src/worker/proof/helper-protocol.ts) that proves each GPU. Default: the
   * helper shipped with the worker (`DEFAULT_GPU_PROVER`); absent, each GPU answers an error.
   */
  gpuProver: z.string().min(1).optional(),
  /** How often GPU load is re-read for heartbeats, ms. */
  gpuSampleIntervalMs: z.number().int().min(500).default(10_000),
  /** Root of job work dirs (default: a 0711 dir in the system temp dir, see jobs/jobs-dir.ts). */
  jobsDir: z.string().min(1).optional(),
  /** Python with the engines (torch, dask) that cluster kinds start. */
  python: z.string().default("/usr/bin/python3"),
  /** Run jobs without a sandbox when bubblewrap is unusable: `tandem dev` only, never in production. */
  allowUnsandboxed: z.boolean().default(false),
  /**
   * Give every rank its own network namespace, with NAT and isolation rules, and multi-node
   * clusters their WireGuard overlay (src/worker/network; needs root). Off (or not possible
   * here): ranks run on the host's network where the coordinator allows it, and a rank refused
   * the internet fails to start. `tandem worker start` turns it on.
   */
  jobNetworks: z.boolean().default(false),
  /** UDP ports the overlays listen on, inclusive (peers on other hosts must reach them). */
  overlayPorts: z
    .strictObject({
      from: z.number().int().min(1).max(65_535),
      to: z.number().int().min(1).max(65_535),
    })
    .refine((r) => r.from <= r.to, "from must not exceed to")
    .default({ from: 51_820, to: 51_899 }),
  /**
   * The IPv4 address peers reach this worker's overlays at, where it differs from the address of
   * its link to the coordinator (a port forward on a NAT router). Default: that link's address.
   */
  publicAddress: z.ipv4().optional(),
  /** Offer `container` clusters through podman where it works here (runtime/podman-runtime.ts). */
  containers: z.boolean().default(true),
  /**
   * What this worker offers each rank at most (jobs/offer.ts); each rank runs with these limits,
   * or less when its cluster asks less. Defaults come from the machine: memory = total minus a
   * reserve for the host, CPUs = all cores, 4096 pids, disk = half the free space of the jobs dir.
   */
  maxMemoryMiB: SizeMiB.pipe(z.number().int().min(64)).optional(),
  maxCpus: z.number().min(0.1).max(4096).optional(),
  maxPids: z.number().int().min(16).max(4_194_304).default(4096),
  maxDiskMiB: SizeMiB.pipe(z.number().int().min(16)).optional(),
  /**
   * Caps on each rank's output (jobs/rank-output.ts): sustained bytes per second, a burst above
   * it, and a total; what exceeds them is dropped, never the job. Default 1 MiB/s, 4 MiB, 64 MiB.
   */
  jobOutputBytesPerSec: z
    .number()
    .int()
    .min(1024)
    .default(1024 * 1024),
  jobOutputBurstBytes: z
    .number()
    .int()
    .min(64 * 1024)
    .default(4 * 1024 * 1024),
  jobOutputMaxBytes: z
    .number()
    .int()
    .min(64 * 1024)
    .default(64 * 1024 * 1024),
  reconnectBaseMs: z.number().int().min(10).default(250),
  reconnectMaxMs: z.number().int().min(100).default(10_000),
});
export type WorkerConfig = z.infer<typeof WorkerConfig>;
export type WorkerConfigInput = z.input<typeof WorkerConfig>;

export function parseWorkerConfig(input: WorkerConfigInput): WorkerConfig {
  const parsed = WorkerConfig.safeParse(input);
  if (!parsed.success) {
    const problems = parsed.error.issues
      .map((i) => `${i.path.join(".") || "config"}: ${i.message}`)
      .join("; ");
    throw new Error(`invalid worker config: ${problems}`);
  }
  for (const url of coordinatorUrlsOf(parsed.data))
    assertSecureCoordinator(url, parsed.data.insecure);
  return parsed.data;
}

/** Every coordinator URL the worker may connect to, the first one first. */
export function coordinatorUrlsOf(
  config: Pick<WorkerConfig, "coordinatorUrl" | "moreCoordinatorUrls">,
): string[] {
  return [config.coordinatorUrl, ...config.moreCoordinatorUrls];
}
