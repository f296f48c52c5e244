/**
 * Picks the job runtime when the worker starts: bubblewrap whenever it works here, the unsandboxed
 * process runtime only when the caller allows it (`tandem dev`), and otherwise a clear refusal —
 * a worker that rents its machine out never runs jobs unsandboxed by accident.
 *
 * "Works" is tried, not assumed: `bwrap --ro-bind / / true` (the binary runs and may create
 * namespaces: user namespaces can be disabled by sysctl or AppArmor), then one real job with the
 * runtime's full command line in a temp dir (the host layout, limits and launch chain work).
 */
import { execFile } from "node:child_process";
import { chmod, mkdtemp, rm } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { createBwrapRuntime, type BwrapRuntimeOptions } from "./bwrap-runtime.ts";
import { JobRuntimeError, type JobRuntime } from "./job-runtime.ts";
import { HOST_PATH } from "./launch.ts";
import { createProcessRuntime } from "./process-runtime.ts";

/** Options of `selectRuntime`. */
export interface SelectRuntimeOptions extends BwrapRuntimeOptions {
  /** Fall back to the unsandboxed process runtime when bwrap is unusable (`tandem dev` only). */
  allowUnsandboxed: boolean;
}

/** The chosen runtime; `warning` is set when the caller must tell the user loudly. */
export interface SelectedRuntime {
  runtime: JobRuntime;
  warning: string | undefined;
}

const PROBE_TIMEOUT_MS = 30_000;

/** Answers undefined when bwrap runs a command in new namespaces here, else why not. */
export function probeBwrap(bwrap = "bwrap"): Promise<string | undefined> {
  return new Promise((resolve) => {
    execFile(
      bwrap,
      ["--unshare-all", "--ro-bind", "/", "/", "true"],
      { env: { PATH: HOST_PATH }, timeout: PROBE_TIMEOUT_MS },
      (error, _stdout, stderr) => {
        if (error === null) resolve(undefined);
        else resolve(`${bwrap} --ro-bind / / true failed: ${stderr.trim() || error.message}`);
      },
    );
  });
}

/** Runs `exit 0` through `runtime`; answers undefined on success, else why not. */
export async function selfTest(runtime: JobRuntime): Promise<string | undefined> {
  const dir = await mkdtemp(path.join(os.tmpdir(), "tandem-runtime-probe-"));
  try {
    await chmod(dir, 0o711); // a root worker's sandbox user must traverse it (sandbox-user.ts)
    const job = await runtime.run({
      jobId: `probe-${process.pid}-${Date.now()}`,
      command: ["/bin/sh", "-c", "exit 0"],
      env: {},
      jobDir: path.join(dir, "job"),
      limits: {},
      network: "none",
    });
    job.stdout.resume();
    job.stderr.resume();
    const exit = await job.exited;
    return exit.exitCode === 0 ? undefined : `a probe job ended with ${JSON.stringify(exit)}`;
  } catch (error) {
    return `a probe job could not start: ${error instanceof Error ? error.message : String(error)}`;
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/** The runtime this worker should use; throws RUNTIME_UNAVAILABLE when none may be used. */
export async function selectRuntime(options: SelectRuntimeOptions): Promise<SelectedRuntime> {
  const { allowUnsandboxed, ...bwrapOptions } = options;
  let reason = await probeBwrap(bwrapOptions.bwrap);
  if (reason === undefined) {
    const runtime = createBwrapRuntime(bwrapOptions);
    reason = await selfTest(runtime);
    if (reason === undefined) return { runtime, warning: undefined };
  }
  if (allowUnsandboxed) {
    const runtime = createProcessRuntime({
      ...(bwrapOptions.limits === undefined ? {} : { limits: bwrapOptions.limits }),
      ...(bwrapOptions.log === undefined ? {} : { log: bwrapOptions.log }),
    });
    return { runtime, warning: `${runtime.warning} (${reason})` };
  }
  throw new JobRuntimeError(
    "RUNTIME_UNAVAILABLE",
    `cannot sandbox jobs: ${reason}. Install bubblewrap (apt-get install bubblewrap) and enable ` +
      "unprivileged user namespaces (sysctl kernel.unprivileged_userns_clone=1, or the AppArmor " +
      "userns policy), or use `tandem dev`, which may run jobs unsandboxed.",
  );
}
