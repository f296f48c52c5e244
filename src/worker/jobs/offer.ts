/**
 * What this worker offers each rank at most: its `--max-*` settings, or defaults from the machine.
 *
 * Defaults, and why:
 * - memory: total minus a reserve for the host (the worker, sshd, the kernel's caches): a tenth of
 *   the total, at least 512 MiB and at most half. A job filling all of it would drive the host into
 *   its own OOM killer, which may pick the worker;
 * - CPUs: all cores (CPU is throttled, never exhausted: the host keeps running under a full job);
 * - pids: 4096 tasks, enough for a data loader pool with threads, far below the kernel's pid_max;
 * - disk: half the space free under the jobs dir at start, so a job cannot fill the disk the
 *   worker and the host write to.
 * A setting beyond the machine (more memory or cores than it has, more disk than is free) fails the
 * start naming it: a node must not advertise what it cannot give.
 */
import { limitsWithin } from "../../core/rank-limits.ts";
import type { HardwareReport, RankLimits, RankLimitsAsk } from "../../protocol/hardware.ts";

/** The `--max-*` settings of `tandem worker start`; unset ones default from the machine. */
export interface OfferSettings {
  maxMemoryMiB?: number | undefined;
  maxCpus?: number | undefined;
  maxPids: number;
  maxDiskMiB?: number | undefined;
}

const MIN_MEMORY_MIB = 64;
const MIN_DISK_MIB = 16;

/** The memory reserved for the host out of `totalMiB`. */
export function hostReserveMiB(totalMiB: number): number {
  return Math.min(Math.max(512, Math.floor(totalMiB / 10)), Math.floor(totalMiB / 2));
}

/** The per-rank offer of a machine with `hardware`; throws naming a setting beyond the machine. */
export function resolveOffer(settings: OfferSettings, hardware: HardwareReport): RankLimits {
  const { memoryTotalMiB, diskFreeMiB } = hardware;
  const cores = hardware.cpu.cores;
  const beyond = (flag: string, asked: string, has: string): never => {
    throw new Error(`invalid worker config: ${flag} ${asked} is more than this machine ${has}`);
  };
  const { maxMemoryMiB, maxCpus, maxDiskMiB } = settings;
  if (maxMemoryMiB !== undefined && maxMemoryMiB > memoryTotalMiB)
    beyond("--max-memory", `${maxMemoryMiB} MiB`, `has (${memoryTotalMiB} MiB)`);
  if (maxCpus !== undefined && maxCpus > cores)
    beyond("--max-cpus", String(maxCpus), `has (${cores} cores)`);
  if (maxDiskMiB !== undefined && maxDiskMiB > diskFreeMiB)
    beyond("--max-disk", `${maxDiskMiB} MiB`, `has free in its jobs dir (${diskFreeMiB} MiB)`);
  return {
    memoryMiB:
      maxMemoryMiB ?? Math.max(MIN_MEMORY_MIB, memoryTotalMiB - hostReserveMiB(memoryTotalMiB)),
    cpuCores: maxCpus ?? cores,
    pids: settings.maxPids,
    diskMiB: maxDiskMiB ?? Math.max(MIN_DISK_MIB, Math.floor(diskFreeMiB / 2)),
  };
}

/**
 * The limits one rank runs with: the cluster's ask where it gives one, the offer elsewhere. An
 * ask beyond the offer (placement keeps those apart; a worker restarted with a smaller offer
 * does not) is answered with the limit it exceeds.
 */
export function rankLimits(
  offer: RankLimits,
  ask: RankLimitsAsk | undefined,
): { ok: true; limits: RankLimits } | { ok: false; message: string } {
  const within = limitsWithin(offer, ask);
  if (within.ok) return { ok: true, limits: { ...within.limits } };
  const { limit, asked, offered } = within;
  return {
    ok: false,
    message: `the cluster asks ${limit} ${asked}, more than this node offers (${offered})`,
  };
}
