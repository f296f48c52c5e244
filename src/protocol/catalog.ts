import { z } from "zod";
import { Amount } from "./clusters.ts";

/** One GPU model the network knows: what `--gpu` takes, its figures and its catalog price. */
export const CatalogGpu = z.strictObject({
  /** The id filters take, e.g. `rtx-4090`. */
  id: z.string(),
  name: z.string(),
  vramMiB: z.number().int(),
  /** Peak dense FP16 tensor TFLOPS (FP32 accumulate). */
  tensorTflops: z.number(),
  fp32Tflops: z.number(),
  tier: z.enum(["consumer", "datacenter"]),
  teeCapable: z.boolean(),
  /** Catalog price per GPU-hour, US dollars (null: the catalog has no price for it). */
  catalogPerGpuHour: Amount.nullable(),
});

export const CatalogGpus = z.strictObject({
  gpus: z.array(CatalogGpu),
  /** `--gpu cpu`: CPU-only nodes, at one catalog price per node-hour (US dollars). */
  cpuOnly: z.strictObject({ id: z.literal("cpu"), catalogPerNodeHour: Amount }),
});
export type CatalogGpus = z.infer<typeof CatalogGpus>;

export const CatalogRegions = z.strictObject({
  regions: z.array(
    z.strictObject({ id: z.string(), name: z.string(), zones: z.array(z.string()) }),
  ),
});
export type CatalogRegions = z.infer<typeof CatalogRegions>;
