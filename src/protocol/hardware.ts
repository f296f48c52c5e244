import { z } from "zod";

/** One GPU as `nvidia-smi --query-gpu` reports it. Raw claims: the coordinator maps `name` to the catalog. */
export const GpuReport = z.strictObject({
  index: z.number().int().min(0).max(63),
  uuid: z.string().min(1).max(80),
  name: z.string().min(1).max(128),
  memoryTotalMiB: z.number().int().min(0).max(16_777_216),
  driverVersion: z.string().max(64),
  pciBusId: z.string().max(64),
  utilizationPct: z.number().min(0).max(100).nullable(),
  temperatureC: z.number().min(-50).max(200).nullable(),
});
export type GpuReport = z.infer<typeof GpuReport>;

/** What a worker's hardware probe finds on its machine. Sizes in MiB. */
export const HardwareReport = z.strictObject({
  cpu: z.strictObject({
    model: z.string().max(256),
    cores: z.number().int().min(1).max(4096),
    arch: z.string().max(32),
  }),
  memoryTotalMiB: z.number().int().min(0).max(1_073_741_824),
  diskFreeMiB: z.number().int().min(0).max(1_073_741_824),
  os: z.strictObject({
    platform: z.string().max(32),
    release: z.string().max(128),
    distro: z.string().max(128),
  }),
  gpus: z.array(GpuReport).max(64),
});
export type HardwareReport = z.infer<typeof HardwareReport>;
