import type { GpuReport } from "../../protocol/hardware.ts";

/**
 * The worker's GPU health check: what is wrong with the GPUs it registered, judged from the latest
 * nvidia-smi sample, or null when nothing is. A GPU that dropped off the bus (gone from the list,
 * e.g. after an Xid 79) or an nvidia-smi that no longer answers means the node cannot serve its
 * rank: the coordinator fails it over (issue 5, failure detection).
 */
export function gpuFault(
  registered: readonly Pick<GpuReport, "uuid">[],
  sample: readonly Pick<GpuReport, "uuid">[] | Error,
): string | null {
  if (registered.length === 0) return null;
  if (sample instanceof Error) return `nvidia-smi failed: ${sample.message}`.slice(0, 200);
  const seen = new Set(sample.map((g) => g.uuid));
  const missing = registered.filter((g) => !seen.has(g.uuid));
  if (missing.length === 0) return null;
  return `${missing.length} of ${registered.length} GPUs gone: ${missing.map((g) => g.uuid).join(", ")}`.slice(
    0,
    200,
  );
}
