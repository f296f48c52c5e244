import { readFile, rm, writeFile } from "node:fs/promises";
import { join } from "node:path";

/**
 * `<home>/worker.pid`: how `tandem worker drain` finds the worker serving from a home. Written by
 * `tandem worker start` once it handles SIGUSR2 (the drain signal), removed when it stops.
 */
export function pidFilePath(home: string): string {
  return join(home, "worker.pid");
}

export async function writePidFile(home: string, pid: number = process.pid): Promise<void> {
  await writeFile(pidFilePath(home), `${pid}\n`, { mode: 0o644 });
}

/** Removes the pid file if it still names `pid` (a newer worker may have taken the home since). */
export async function removePidFile(home: string, pid: number = process.pid): Promise<void> {
  if ((await readPid(home)) === pid) await rm(pidFilePath(home), { force: true });
}

export type RunningWorker =
  | { ok: true; pid: number }
  | { ok: false; code: "WORKER_NOT_RUNNING" | "WORKER_NOT_YOURS"; message: string };

/**
 * The worker running from `home`, if one is: its pid file names a live process that is a tandem
 * worker (checked through /proc where it exists, so that a stale file whose pid was reused never
 * gets a signal meant for a worker).
 */
export async function findRunningWorker(home: string): Promise<RunningWorker> {
  const path = pidFilePath(home);
  const notRunning = (why: string): RunningWorker => ({
    ok: false,
    code: "WORKER_NOT_RUNNING",
    message: `no worker is running from ${home}: ${why}`,
  });
  const pid = await readPid(home);
  if (pid === undefined) return notRunning(`${path} does not exist`);
  if (pid === null) return notRunning(`${path} does not hold a pid`);
  try {
    process.kill(pid, 0);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === "ESRCH") return notRunning(`pid ${pid} in ${path} has exited (stale pid file)`);
    if (code === "EPERM")
      return {
        ok: false,
        code: "WORKER_NOT_YOURS",
        message: `the worker running from ${home} (pid ${pid}) belongs to another user: run this as that user`,
      };
    throw error;
  }
  const argv = await readFile(`/proc/${pid}/cmdline`, "utf8").then(
    (text) => text.split("\0"),
    () => undefined,
  );
  if (argv !== undefined && !argv.includes("worker"))
    return notRunning(`pid ${pid} in ${path} is not a tandem worker (stale pid file)`);
  return { ok: true, pid };
}

/** The pid in the file; undefined without a file, null when it holds no pid. */
async function readPid(home: string): Promise<number | null | undefined> {
  let text: string;
  try {
    text = await readFile(pidFilePath(home), "utf8");
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "ENOENT") return undefined;
    throw error;
  }
  const pid = Number(text.trim());
  return Number.isSafeInteger(pid) && pid > 0 ? pid : null;
}
