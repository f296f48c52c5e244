/**
 * The host user a root worker's sandboxes run as: one unprivileged uid per job.
 *
 * Why not root: bubblewrap started by root maps the sandbox's uid 1000 to host uid 0. Without
 * capabilities that still passes every plain permission check on root-owned files, and the kernel
 * guards many of its own knobs with nothing else: measured here, a job of a root-started bwrap
 * could rewrite global sysctls (/proc/sys/vm/swappiness, vm/drop_caches; kernel/core_pattern would
 * run a program as host root). So a root worker drops to a per-job uid before starting bwrap
 * (setpriv), and the kernel then treats the job as a stranger to every host file. Distinct uids
 * per job mean that even a job that escaped its mount namespace could not touch another job's
 * files or processes. The uid is derived from the job id inside a range no account uses
 * (default 1,500,000,000 + 0…99,999,999), skipping uids of jobs still running here.
 *
 * The price: the job dir is chowned to that uid, and every directory above it must let "others"
 * traverse (mode o+x, e.g. 0711: traverse without listing). bubblewrap 0.8 resolves bind sources
 * with realpath() as the sandbox's user, so a 0700 ancestor — the default ~/.tandem — makes the
 * job fail to start; `assertTraversable` says which directory to change.
 * A non-root worker runs its sandboxes as its own uid (it cannot switch), which is already
 * unprivileged.
 */
import { stat } from "node:fs/promises";
import path from "node:path";
import { JobRuntimeError } from "./job-runtime.ts";

/** Range of host uids (and equal gids) for sandboxes. */
export interface SandboxUidRange {
  first: number;
  count: number;
}

export const DEFAULT_SANDBOX_UIDS: SandboxUidRange = { first: 1_500_000_000, count: 100_000_000 };

/** FNV-1a, 32 bits: a stable spread of job ids over the range. */
function hash(text: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) h = Math.imul(h ^ text.charCodeAt(i), 0x01000193) >>> 0;
  return h;
}

/** Hands out one host uid per running job. */
export class SandboxUids {
  private readonly inUse = new Set<number>();

  constructor(private readonly range: SandboxUidRange = DEFAULT_SANDBOX_UIDS) {
    if (!(range.count > 0 && range.first > 0 && range.first + range.count < 2 ** 31)) {
      throw new RangeError("sandbox uid range must lie within 1…2^31-1");
    }
  }

  /** A uid for `jobId` that no running job here has; give it back with `release`. */
  acquire(jobId: string): number {
    for (let probe = 0; probe < this.range.count; probe++) {
      const uid = this.range.first + ((hash(jobId) + probe) % this.range.count);
      if (!this.inUse.has(uid)) {
        this.inUse.add(uid);
        return uid;
      }
    }
    throw new JobRuntimeError("JOB_START_FAILED", "no free sandbox uid");
  }

  release(uid: number): void {
    this.inUse.delete(uid);
  }
}

/** Throws JOB_START_FAILED naming the first directory above `jobDir` that `uid` cannot traverse. */
export async function assertTraversable(jobDir: string, uid: number): Promise<void> {
  const ancestors: string[] = [];
  for (let dir = path.dirname(jobDir); ; dir = path.dirname(dir)) {
    ancestors.unshift(dir);
    if (dir === path.dirname(dir)) break;
  }
  for (const dir of ancestors) {
    const s = await stat(dir);
    const mode = s.mode & 0o777;
    const ok =
      (mode & 0o001) !== 0 ||
      (s.uid === uid && (mode & 0o100) !== 0) ||
      (s.gid === uid && (mode & 0o010) !== 0);
    if (!ok) {
      throw new JobRuntimeError(
        "JOB_START_FAILED",
        `the sandbox user (uid ${uid}) cannot reach the job dir: ${dir} has mode ` +
          `0${mode.toString(8)}; give others traverse permission (chmod o+x, e.g. 0711) or keep job dirs elsewhere`,
      );
    }
  }
}
