/** Finding and ending a job's host processes. */
import { readdir, readFile, readlink } from "node:fs/promises";
import { setTimeout as delay } from "node:timers/promises";

/** process.kill that treats "already gone" as done. */
export function signalQuietly(pid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(pid, signal);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== "ESRCH") throw error;
  }
}

function goneOrHidden(error: unknown): undefined {
  const code = (error as NodeJS.ErrnoException).code;
  if (code === "ENOENT" || code === "ESRCH" || code === "EACCES") return undefined;
  throw error;
}

/** True unless /proc says `pid` is a zombie (dead, waiting to be reaped) or gone. */
export async function isLive(pid: number): Promise<boolean> {
  const stat = await readFile(`/proc/${pid}/stat`, "utf8").catch(goneOrHidden);
  if (stat === undefined) return false;
  const state = stat.slice(stat.lastIndexOf(")") + 2, stat.lastIndexOf(")") + 3);
  return state !== "Z" && state !== "X";
}

/**
 * Live host pids whose pid namespace has inode `nsInode` (as /proc/<pid>/ns/pid names it).
 * Zombies are left out: a sandbox's pid 1 is reparented to the host's init when it dies, and some
 * inits reap only every second or so.
 */
export async function pidNamespaceMembers(nsInode: number): Promise<number[]> {
  const wanted = `pid:[${nsInode}]`;
  const found: number[] = [];
  for (const entry of await readdir("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    const link = await readlink(`/proc/${entry}/ns/pid`).catch(goneOrHidden);
    if (link === wanted && (await isLive(Number(entry)))) found.push(Number(entry));
  }
  return found;
}

/**
 * SIGKILLs whatever `members` lists until it lists nothing. Bounded (about 10 s); answers whether
 * it emptied. Polling is needed because a dying process's zombie stays listed until reaped.
 */
export async function killUntilEmpty(members: () => Promise<number[]>): Promise<boolean> {
  for (let attempt = 0; attempt < 200; attempt++) {
    const pids = await members();
    if (pids.length === 0) return true;
    for (const pid of pids) signalQuietly(pid, "SIGKILL");
    await delay(Math.min(50, 2 + attempt));
  }
  return false;
}
