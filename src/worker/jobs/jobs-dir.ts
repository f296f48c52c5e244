import { createHash } from "node:crypto";
import { chmod, lstat, mkdir } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";

/**
 * Where job work dirs live. Not under the worker's home: that holds the device key and is 0700,
 * and a root worker's sandboxes run as per-job uids that must traverse every parent of their job
 * dir (runtime/sandbox-user.ts). So jobs get their own root, mode 0711 (traverse, no listing),
 * by default in the system temp dir, one per worker home. A path there that is a symlink or
 * belongs to someone else is refused rather than used.
 */
export async function prepareJobsDir(home: string, explicit?: string): Promise<string> {
  const dir =
    explicit ??
    join(
      tmpdir(),
      `tandem-jobs-${process.getuid?.() ?? 0}-${createHash("sha256").update(home).digest("hex").slice(0, 12)}`,
    );
  await mkdir(dir, { recursive: true, mode: 0o711 });
  const info = await lstat(dir);
  if (!info.isDirectory() || (process.getuid !== undefined && info.uid !== process.getuid())) {
    throw new Error(`refusing jobs dir ${dir}: not a directory owned by this user`);
  }
  await chmod(dir, 0o711);
  return dir;
}
