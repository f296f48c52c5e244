/**
 * What the worker learns from a starting sandbox, through two pipes:
 * - bwrap's --json-status-fd: the host pid of the sandbox's pid 1 and the pid namespace's inode
 *   (written by bwrap's monitor right after clone, before the sandbox is set up);
 * - the start pipe: one byte written by a `sh` shim inside the sandbox right before it execs the
 *   job's argv, i.e. after every mount succeeded. bubblewrap 0.8 reports no "setup finished", and
 *   without it a bad mount (a missing GPU device node) would look like a job that exited 1.
 */
import { createInterface } from "node:readline";
import type { Readable } from "node:stream";

/** State learnt from bwrap's status documents. */
export interface SandboxStatus {
  /** Host pid of the sandbox's pid 1 (bwrap's reaper). */
  reaperPid?: number;
  /** Inode of the sandbox's pid namespace. */
  pidNamespace?: number;
}

/** The sandbox's argv prefix: signal on `fd`, close it, exec the job's argv unchanged (no parsing). */
export function startShim(fd: number): string[] {
  return ["/bin/sh", "-c", `printf x >&${fd}; exec ${fd}>&-; exec "$@"`, "tandem-start"];
}

/** Resolves true on the shim's byte, false when the pipe ends without it (setup failed). */
export function startSignal(stream: Readable): Promise<boolean> {
  return new Promise((resolve) => {
    stream.once("data", () => {
      resolve(true);
      stream.resume();
    });
    stream.once("end", () => resolve(false));
    stream.once("close", () => resolve(false));
    stream.once("error", () => resolve(false));
  });
}

/** Follows bwrap's status documents (one JSON object per line), filling `status`. */
export function followStatus(stream: Readable, status: SandboxStatus): Promise<void> {
  return new Promise((resolve) => {
    const lines = createInterface({ input: stream });
    lines.on("line", (line) => {
      const doc = parseStatusLine(line);
      const pid = doc?.["child-pid"];
      const ns = doc?.["pid-namespace"];
      if (pid !== undefined) status.reaperPid = pid;
      if (ns !== undefined) status.pidNamespace = ns;
      if (pid !== undefined) resolve();
    });
    lines.on("close", () => resolve());
  });
}

function parseStatusLine(line: string): Record<string, number> | undefined {
  try {
    const value: unknown = JSON.parse(line);
    if (typeof value !== "object" || value === null) return undefined;
    return Object.fromEntries(
      Object.entries(value).filter((e): e is [string, number] => typeof e[1] === "number"),
    );
  } catch (error) {
    if (error instanceof SyntaxError) return undefined;
    throw error;
  }
}

/** The first 4000 characters of what is left in `stream`. */
export async function readRest(stream: Readable): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString("utf8").slice(0, 4000);
}
