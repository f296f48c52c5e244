// An OCI image for container tests, built here: no registry is reachable, and Tandem never pulls.
// One static busybox as the whole root file system, imported with `podman import`.
import { execFile } from "node:child_process";
import { copyFile, mkdir, mkdtemp, rm, symlink } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { promisify } from "node:util";

const run = promisify(execFile);
const APPLETS = ["sh", "cat", "echo", "id", "ls", "sleep", "touch", "pwd"];

/** Imports the image as `tag`; answers a function that removes it again. */
export async function importBusyboxImage(
  tag: string,
  env: NodeJS.ProcessEnv = process.env,
): Promise<() => Promise<void>> {
  const dir = await mkdtemp(path.join(tmpdir(), "tandem-image-"));
  try {
    const rootfs = path.join(dir, "rootfs");
    await mkdir(path.join(rootfs, "bin"), { recursive: true });
    await mkdir(path.join(rootfs, "tmp"));
    await mkdir(path.join(rootfs, "job"));
    await copyFile("/bin/busybox", path.join(rootfs, "bin", "busybox"));
    for (const applet of APPLETS) await symlink("busybox", path.join(rootfs, "bin", applet));
    await run("tar", ["-C", rootfs, "-cf", path.join(dir, "rootfs.tar"), "."]);
    await run("podman", ["import", path.join(dir, "rootfs.tar"), tag], { env });
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
  return async () => {
    await run("podman", ["rmi", "--force", tag], { env }).catch(() => undefined);
  };
}
