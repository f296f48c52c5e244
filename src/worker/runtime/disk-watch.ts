/**
 * The `/job` disk limit: a watcher that measures the job dir and ends the job once it is full.
 *
 * Why a watcher and not a size-limited filesystem for /job: a loop-mounted image needs root, a
 * free loop device and mkfs (none of which an unprivileged worker, or a worker in a container, has);
 * tmpfs with `size=` spends RAM, not disk; project quotas need an XFS or ext4 mount with `prjquota`,
 * which a supplier's jobs dir seldom is. A watcher works for every worker, root or not, on any
 * filesystem, and needs nothing from the host.
 *
 * Two parts keep a job within `limitMiB`:
 * - RLIMIT_FSIZE at the limit (launch.ts, sandboxes and plain processes): no single file grows past
 *   it at all — the write fails with EFBIG (or SIGXFSZ ends the writer);
 * - this watcher sums the allocated blocks of every file under the dir (each inode once: hard
 *   links do not count twice, symlinks are not followed) every `intervalMs`, and ends the job
 *   when the sum reaches the limit (waiting at least 4 walks between samples, so a dir of very many
 *   files costs at most a fifth of a core). A job writing many files overshoots by at most what it
 *   writes in one interval plus one walk; a final measure at exit catches a job that hit the limit and
 *   ended before the next sample.
 * Not counted: files the job deleted but still holds open (each bounded by RLIMIT_FSIZE).
 */
import type { Dirent } from "node:fs";
import { lstat, readdir } from "node:fs/promises";
import path from "node:path";

const MIB = 1024 * 1024;
export const DEFAULT_DISK_SAMPLE_MS = 500;

/** Bytes allocated under `dir` (st_blocks × 512), each inode once; 0 when it does not exist. */
export async function diskUsageBytes(dir: string): Promise<number> {
  const seen = new Set<string>();
  let total = 0;
  const stack = [dir];
  while (stack.length > 0) {
    const current = stack.pop()!;
    let stat;
    try {
      stat = await lstat(current, { bigint: true });
    } catch {
      continue; // removed while we walked: it uses nothing now
    }
    const inode = `${stat.dev}:${stat.ino}`;
    if (seen.has(inode)) continue;
    seen.add(inode);
    total += Number(stat.blocks) * 512;
    if (!stat.isDirectory()) continue;
    let entries: Dirent[] = [];
    try {
      entries = await readdir(current, { withFileTypes: true });
    } catch {
      continue; // removed, or made unreadable by the job: see below
    }
    for (const entry of entries) stack.push(path.join(current, entry.name));
  }
  return total;
}

/** A running watch of one job dir. */
export interface DiskWatch {
  /** Stops sampling; answers whether the dir reached the limit (sampled, or measured now). */
  stop(): Promise<boolean>;
}

/**
 * Samples `dir` every `intervalMs` and calls `onExceeded` once when it holds `limitMiB` or more.
 * A root worker reads every job dir; a job that makes a subdirectory unreadable to an unprivileged
 * worker hides it from the count (the worker's own uid owns the sandbox uid's files otherwise).
 */
export function watchDisk(options: {
  dir: string;
  limitMiB: number;
  intervalMs?: number;
  onExceeded: () => void;
  log: (message: string, fields?: Record<string, unknown>) => void;
}): DiskWatch {
  const limitBytes = options.limitMiB * MIB;
  const intervalMs = options.intervalMs ?? DEFAULT_DISK_SAMPLE_MS;
  let exceeded = false;
  let stopped = false;
  let timer: NodeJS.Timeout | undefined;
  let walkMs = 0;
  const over = async (): Promise<boolean> => {
    const startedAt = performance.now();
    const used = await diskUsageBytes(options.dir);
    walkMs = performance.now() - startedAt;
    return used >= limitBytes;
  };
  const sample = (): void => {
    // A job dir of many files makes each walk long: sampling waits 4 walks at least, so the
    // watcher spends at most a fifth of a core on it.
    timer = setTimeout(
      () => {
        over().then(
          (full) => {
            if (stopped) return;
            if (full && !exceeded) {
              exceeded = true;
              options.log("job dir reached its disk limit; ending the job", {
                dir: options.dir,
                limitMiB: options.limitMiB,
              });
              options.onExceeded();
              return;
            }
            sample();
          },
          (error: unknown) => {
            options.log("job dir measure failed", { dir: options.dir, error: String(error) });
            if (!stopped) sample();
          },
        );
      },
      Math.max(intervalMs, 4 * walkMs),
    );
    timer.unref();
  };
  sample();
  return {
    async stop() {
      stopped = true;
      clearTimeout(timer);
      if (exceeded) return true;
      exceeded = await over().catch(() => false);
      return exceeded;
    },
  };
}
