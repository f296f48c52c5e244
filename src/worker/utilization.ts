import { cpus, freemem, totalmem } from "node:os";
import type { Utilization } from "../protocol/worker-messages.ts";

type CpuTimes = { idle: number; total: number };

function cpuTimes(): CpuTimes {
  let idle = 0;
  let total = 0;
  for (const cpu of cpus()) {
    idle += cpu.times.idle;
    total += cpu.times.user + cpu.times.nice + cpu.times.sys + cpu.times.irq + cpu.times.idle;
  }
  return { idle, total };
}

/**
 * Samples machine load for heartbeats: CPU busy share since the previous sample, memory in use,
 * and the GPUs' last reading (refreshed elsewhere, since nvidia-smi is too slow to run per beat).
 */
export function utilizationSampler(
  gpus: () => Utilization["gpus"],
  gpuFault: () => string | null = () => null,
): () => Utilization {
  let previous = cpuTimes();
  return () => {
    const current = cpuTimes();
    const total = current.total - previous.total;
    const busy = total - (current.idle - previous.idle);
    previous = current;
    return {
      cpuPct: total > 0 ? Math.min(100, Math.max(0, Math.round((busy / total) * 1000) / 10)) : 0,
      memoryUsedMiB: Math.max(0, Math.round((totalmem() - freemem()) / 1_048_576)),
      gpus: gpus(),
      ...(gpuFault() === null ? {} : { gpuFault: gpuFault()! }),
    };
  };
}
