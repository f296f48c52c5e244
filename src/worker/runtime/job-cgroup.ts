/**
 * One job's cgroups: created inside the worker's own cgroup in each tree, limits written before the
 * job starts, the job's first process joins them itself (launch.ts) so nothing it forks escapes,
 * and at the end every member is killed and the directories removed.
 *
 * Trade-offs:
 * - cgroup v2 forbids controllers in a cgroup that holds processes ("no internal processes"). If
 *   enabling a controller in the worker's cgroup fails with EBUSY, the worker moves itself into a
 *   `tandem-worker` leaf and retries once (what systemd documents for `Delegate=yes` services);
 *   if other processes share its cgroup, v2 limits are skipped and v1 or rlimits are used.
 * - A tree that is not writable (unprivileged worker without delegation) is skipped, not an error.
 * - The hybrid v2 tree without controllers still tracks the job: `cgroup.kill` ends every member
 *   at once, even one that double-forked or called setsid.
 */
import { existsSync } from "node:fs";
import { mkdir, readdir, readFile, rmdir, writeFile } from "node:fs/promises";
import path from "node:path";
import { setTimeout as delay } from "node:timers/promises";
import { chooseHierarchies, type CgroupHierarchy, type LimitController } from "./cgroup-detect.ts";
import type { JobLimits } from "./job-runtime.ts";
import { killUntilEmpty } from "./processes.ts";

export type CgroupEnforcement = "cgroup-v1" | "cgroup-v2";

/** The cgroups of one running job. */
export interface JobCgroup {
  readonly enforcedBy: Partial<Record<LimitController, CgroupEnforcement>>;
  /** cgroup.procs files the job's first process writes its pid to before exec. */
  readonly procsFiles: readonly string[];
  /** Host pids in the job's cgroup. */
  members(): Promise<number[]>;
  /** True when the kernel OOM-killed a process of the job. */
  oomKilled(): Promise<boolean>;
  /** True when the pids controller refused the job a fork or clone (its `max` event count). */
  pidsLimitHit(): Promise<boolean>;
  /** SIGKILLs every member until none is left (bounded). */
  killAll(): Promise<void>;
  /** Removes the directories; logs what could not be removed. */
  remove(): Promise<void>;
}

type Log = (message: string, fields?: Record<string, unknown>) => void;
const CPU_PERIOD_US = 100_000;
const MIB = 1024 * 1024;

function errno(error: unknown): string | undefined {
  return (error as NodeJS.ErrnoException).code;
}

const LIMIT_OF: Record<LimitController, keyof JobLimits> = {
  memory: "memoryMiB",
  cpu: "cpuCores",
  pids: "maxProcesses",
};

/** [file, value] pairs that set `controller`'s limit; the optional ones may be absent. */
function limitWrites(
  version: 1 | 2,
  controller: LimitController,
  limits: JobLimits,
): Array<{ file: string; value: string; optional?: true }> {
  switch (controller) {
    case "memory": {
      const bytes = String((limits.memoryMiB ?? 0) * MIB);
      return version === 1
        ? [
            { file: "memory.limit_in_bytes", value: bytes },
            { file: "memory.memsw.limit_in_bytes", value: bytes, optional: true },
          ]
        : [
            { file: "memory.max", value: bytes },
            { file: "memory.swap.max", value: "0", optional: true },
          ];
    }
    case "cpu": {
      const quota = String(Math.max(1000, Math.round((limits.cpuCores ?? 1) * CPU_PERIOD_US)));
      return version === 1
        ? [
            { file: "cpu.cfs_period_us", value: String(CPU_PERIOD_US) },
            { file: "cpu.cfs_quota_us", value: quota },
          ]
        : [{ file: "cpu.max", value: `${quota} ${CPU_PERIOD_US}` }];
    }
    case "pids":
      return [{ file: "pids.max", value: String(limits.maxProcesses ?? 0) }];
  }
}

/**
 * Makes sure `controllers` are enabled for children of the worker's v2 cgroup; answers those that
 * are. Done once per runtime (the caller caches the answer).
 */
export async function enableV2Controllers(
  hierarchy: CgroupHierarchy,
  controllers: readonly LimitController[],
  log: Log,
): Promise<LimitController[]> {
  const control = path.join(hierarchy.ownDir, "cgroup.subtree_control");
  const enabled = async (): Promise<Set<string>> =>
    new Set((await readFile(control, "utf8")).split(/\s+/));
  const missing = async (): Promise<LimitController[]> => {
    const on = await enabled();
    return controllers.filter((c) => !on.has(c));
  };
  try {
    let todo = await missing();
    if (todo.length === 0) return [...controllers];
    try {
      await writeFile(control, todo.map((c) => `+${c}`).join(" "));
    } catch (error) {
      if (errno(error) !== "EBUSY") throw error;
      const leaf = path.join(hierarchy.ownDir, "tandem-worker");
      await mkdir(leaf, { recursive: true });
      await writeFile(path.join(leaf, "cgroup.procs"), String(process.pid));
      log("moved the worker into a leaf cgroup to enable v2 controllers", { leaf });
      await writeFile(control, todo.map((c) => `+${c}`).join(" "));
    }
    todo = await missing();
    return controllers.filter((c) => !todo.includes(c));
  } catch (error) {
    log("cgroup v2 controllers unavailable; falling back", {
      dir: hierarchy.ownDir,
      error: String(error),
    });
    return [];
  }
}

/**
 * Creates the job's cgroups for the limits set in `limits` (plus a tracking cgroup) and writes the
 * limits. Returns undefined where no tree is writable.
 */
export async function createJobCgroup(options: {
  hierarchies: readonly CgroupHierarchy[];
  name: string;
  limits: JobLimits;
  log: Log;
}): Promise<JobCgroup | undefined> {
  const { hierarchies, name, limits, log } = options;
  const wanted = (Object.keys(LIMIT_OF) as LimitController[]).filter(
    (c) => limits[LIMIT_OF[c]] !== undefined,
  );
  const chosen = chooseHierarchies(hierarchies, wanted);
  const tracking =
    hierarchies.find((h) => h.version === 2) ??
    hierarchies.find((h) => h.version === 1 && h.controllers.includes("pids"));

  const byTree = new Map<CgroupHierarchy, LimitController[]>();
  if (tracking !== undefined) byTree.set(tracking, []);
  for (const [controller, tree] of chosen)
    byTree.set(tree, [...(byTree.get(tree) ?? []), controller]);

  const enforcedBy: Partial<Record<LimitController, CgroupEnforcement>> = {};
  const dirs: Array<{ tree: CgroupHierarchy; dir: string }> = [];
  for (const [tree, controllers] of byTree) {
    const dir = path.join(tree.ownDir, name);
    try {
      await mkdir(dir);
    } catch (error) {
      if (errno(error) !== "EEXIST") {
        log("cgroup not writable; skipping it", { dir, error: String(error) });
        continue;
      }
    }
    dirs.push({ tree, dir });
    for (const controller of controllers) {
      try {
        for (const w of limitWrites(tree.version, controller, limits)) {
          try {
            await writeFile(path.join(dir, w.file), w.value);
          } catch (error) {
            if (!(w.optional && errno(error) === "ENOENT")) throw error;
          }
        }
        enforcedBy[controller] = tree.version === 2 ? "cgroup-v2" : "cgroup-v1";
      } catch (error) {
        log("could not set a cgroup limit; falling back", {
          dir,
          controller,
          error: String(error),
        });
      }
    }
  }
  if (dirs.length === 0) return undefined;
  return jobCgroup(dirs, enforcedBy, log);
}

async function readPids(file: string): Promise<number[]> {
  try {
    const text = await readFile(file, "utf8");
    return text
      .split("\n")
      .filter((l) => l !== "")
      .map(Number);
  } catch (error) {
    if (errno(error) === "ENOENT") return [];
    throw error;
  }
}

function jobCgroup(
  dirs: ReadonlyArray<{ tree: CgroupHierarchy; dir: string }>,
  enforcedBy: Partial<Record<LimitController, CgroupEnforcement>>,
  log: Log,
): JobCgroup {
  const first = dirs[0]!;
  const memory = dirs.find(
    (d) => enforcedBy.memory !== undefined && d.tree.controllers.includes("memory"),
  );
  const pids = dirs.find(
    (d) => enforcedBy.pids !== undefined && d.tree.controllers.includes("pids"),
  );
  const members = async (): Promise<number[]> => readPids(path.join(first.dir, "cgroup.procs"));
  return {
    enforcedBy,
    procsFiles: dirs.map((d) => path.join(d.dir, "cgroup.procs")),
    members,
    async oomKilled() {
      if (memory === undefined) return false;
      const file = memory.tree.version === 1 ? "memory.oom_control" : "memory.events";
      const text = await readFile(path.join(memory.dir, file), "utf8");
      const m = /^oom_kill (\d+)$/m.exec(text);
      return m !== null && Number(m[1]) > 0;
    },
    async pidsLimitHit() {
      if (pids === undefined) return false;
      const text = await readFile(path.join(pids.dir, "pids.events"), "utf8").catch(
        (error: unknown) => {
          if (errno(error) === "ENOENT") return ""; // pids.events needs Linux 4.8
          throw error;
        },
      );
      const m = /^max (\d+)$/m.exec(text);
      return m !== null && Number(m[1]) > 0;
    },
    async killAll() {
      if (first.tree.version === 2) {
        await writeFile(path.join(first.dir, "cgroup.kill"), "1").catch((error: unknown) => {
          if (errno(error) !== "ENOENT") throw error; // cgroup.kill needs Linux 5.14
        });
      }
      if (!(await killUntilEmpty(members))) {
        log("job cgroup still has processes after SIGKILL", { dir: first.dir });
      }
    },
    async remove() {
      for (const { dir } of dirs) {
        for (let attempt = 0; ; attempt++) {
          try {
            await rmdir(dir);
            break;
          } catch (error) {
            if (errno(error) === "ENOENT") break;
            if (errno(error) !== "EBUSY" || attempt >= 100) {
              log("could not remove a job cgroup", { dir, error: String(error) });
              break;
            }
            await delay(Math.min(50, 2 + attempt));
          }
        }
      }
    },
  };
}

/** The name of a job's cgroup: the worker's pid first, so a later worker can tell stale ones. */
export function jobCgroupName(jobId: string): string {
  return `tandem-${process.pid}-${jobId}`;
}

/**
 * Removes job cgroups left by workers that died without cleaning up (kill -9, power loss): those
 * named after a pid that no longer exists. A live worker's cgroups are never touched, and a
 * cgroup that still has processes cannot be removed (the kernel refuses with EBUSY).
 */
export async function sweepStaleCgroups(
  hierarchies: readonly CgroupHierarchy[],
  log: Log,
): Promise<void> {
  for (const { ownDir } of hierarchies) {
    const entries = await readdir(ownDir).catch((error: unknown) => {
      if (errno(error) === "ENOENT" || errno(error) === "EACCES") return [];
      throw error;
    });
    for (const entry of entries) {
      const pid = /^tandem-(\d+)-/.exec(entry)?.[1];
      if (pid === undefined || existsSync(`/proc/${pid}`)) continue;
      await rmdir(path.join(ownDir, entry)).catch((error: unknown) =>
        log("could not remove a stale job cgroup", {
          dir: path.join(ownDir, entry),
          error: String(error),
        }),
      );
    }
  }
}
