/**
 * Finds the cgroup hierarchies this process may create job cgroups in.
 *
 * Linux hosts come in three shapes, and the runtime must handle all of them:
 * - unified (cgroup v2 only): one tree at /sys/fs/cgroup, controllers listed in cgroup.controllers;
 * - hybrid (measured on our CI machines, MACHINE-NOTES.md): v1 trees per controller
 *   (/sys/fs/cgroup/memory, /cpu, /pids, …) plus a v2 tree at /sys/fs/cgroup/unified with no
 *   controllers — usable only to track and kill a job's processes;
 * - legacy (v1 only).
 * Each limit picks, in order: a v2 tree offering its controller, a v1 tree of that controller, else
 * an rlimit. Job cgroups go inside the worker's own cgroup in each tree (read from /proc/self/cgroup,
 * which differs per tree: the memory cgroup here is /process_api/<id>, the others are /).
 */
import { readFile } from "node:fs/promises";
import path from "node:path";

/** One mounted cgroup tree, with the worker's own cgroup directory in it. */
export interface CgroupHierarchy {
  version: 1 | 2;
  /** v1: the limit controllers mounted on this tree; v2: those in the own cgroup.controllers. */
  controllers: readonly LimitController[];
  /** Absolute directory of the worker's own cgroup in this tree. */
  ownDir: string;
}

/** The kernel controllers the job limits use. */
export type LimitController = "memory" | "cpu" | "pids";
const isLimitController = (name: string): name is LimitController =>
  name === "memory" || name === "cpu" || name === "pids";

interface CgroupMount {
  version: 1 | 2;
  /** Root of the mount inside the hierarchy (not "/" in some containers). */
  root: string;
  mountPoint: string;
  controllers: readonly LimitController[];
}

const unescapeMountField = (field: string): string =>
  field.replace(/\\([0-7]{3})/g, (_, octal: string) => String.fromCharCode(parseInt(octal, 8)));

/** The cgroup mounts listed in /proc/self/mountinfo (proc(5)). */
export function parseCgroupMounts(mountinfo: string): CgroupMount[] {
  const mounts: CgroupMount[] = [];
  for (const line of mountinfo.split("\n")) {
    const [before, after] = line.split(" - ");
    if (before === undefined || after === undefined) continue;
    const fields = before.split(" ");
    const [fsType, , superOptions = ""] = after.split(" ");
    const root = fields[3];
    const mountPoint = fields[4];
    if (root === undefined || mountPoint === undefined) continue;
    if (fsType === "cgroup2") {
      mounts.push({
        version: 2,
        root,
        mountPoint: unescapeMountField(mountPoint),
        controllers: [],
      });
    } else if (fsType === "cgroup") {
      const controllers = superOptions.split(",").filter(isLimitController);
      mounts.push({ version: 1, root, mountPoint: unescapeMountField(mountPoint), controllers });
    }
  }
  return mounts;
}

/** The worker's own cgroup path per v1 controller, and in v2 ("" key), from /proc/self/cgroup. */
export function parseProcCgroup(text: string): Map<string, string> {
  const own = new Map<string, string>();
  for (const line of text.split("\n")) {
    const m = /^(\d+):([^:]*):(.*)$/.exec(line.trim());
    if (!m) continue;
    const [, id, controllers = "", cgroupPath = ""] = m;
    if (id === "0" && controllers === "") own.set("", cgroupPath);
    for (const c of controllers.split(",")) if (c !== "") own.set(c, cgroupPath);
  }
  return own;
}

function ownDirIn(mount: CgroupMount, ownPath: string): string | undefined {
  // Inside a cgroup namespace the paths are relative to the namespace root, which is the mount root.
  const relative =
    mount.root === "/"
      ? ownPath
      : ownPath.startsWith(mount.root)
        ? ownPath.slice(mount.root.length)
        : undefined;
  if (relative === undefined || relative.includes("/..")) return undefined;
  const dir = path.join(mount.mountPoint, relative);
  return dir.length > 1 && dir.endsWith("/") ? dir.slice(0, -1) : dir;
}

/**
 * The hierarchies from mountinfo and /proc/self/cgroup text. v2 controllers are left empty here;
 * `detectCgroupHierarchies` reads them from the own cgroup's cgroup.controllers.
 */
export function parseCgroupHierarchies(
  mountinfo: string,
  procSelfCgroup: string,
): CgroupHierarchy[] {
  const own = parseProcCgroup(procSelfCgroup);
  const hierarchies: CgroupHierarchy[] = [];
  const seen = new Set<string>();
  for (const mount of parseCgroupMounts(mountinfo)) {
    const key = mount.version === 2 ? "" : mount.controllers[0];
    if (key === undefined) continue; // a v1 tree without a limit controller (name=systemd, blkio…)
    const ownPath = own.get(key);
    if (ownPath === undefined) continue;
    const ownDir = ownDirIn(mount, ownPath);
    if (ownDir === undefined || seen.has(ownDir)) continue;
    seen.add(ownDir);
    hierarchies.push({ version: mount.version, controllers: mount.controllers, ownDir });
  }
  return hierarchies;
}

async function readOptional(file: string): Promise<string | undefined> {
  try {
    return await readFile(file, "utf8");
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === "ENOENT" || code === "EACCES" || code === "ENODEV") return undefined;
    throw error;
  }
}

/** This process's cgroup hierarchies; empty where /proc or cgroupfs is not readable. */
export async function detectCgroupHierarchies(): Promise<CgroupHierarchy[]> {
  const [mountinfo, procSelfCgroup] = await Promise.all([
    readOptional("/proc/self/mountinfo"),
    readOptional("/proc/self/cgroup"),
  ]);
  if (mountinfo === undefined || procSelfCgroup === undefined) return [];
  const hierarchies = parseCgroupHierarchies(mountinfo, procSelfCgroup);
  return Promise.all(
    hierarchies.map(async (h) => {
      if (h.version === 1) return h;
      const listed = (await readOptional(path.join(h.ownDir, "cgroup.controllers"))) ?? "";
      const controllers = listed.split(/\s+/).filter(isLimitController);
      return { ...h, controllers };
    }),
  );
}

/** For each limit controller, the tree to use: v2 where it offers the controller, else v1. */
export function chooseHierarchies(
  hierarchies: readonly CgroupHierarchy[],
  wanted: readonly LimitController[],
): Map<LimitController, CgroupHierarchy> {
  const chosen = new Map<LimitController, CgroupHierarchy>();
  for (const controller of wanted) {
    const v2 = hierarchies.find((h) => h.version === 2 && h.controllers.includes(controller));
    const v1 = hierarchies.find((h) => h.version === 1 && h.controllers.includes(controller));
    const pick = v2 ?? v1;
    if (pick !== undefined) chosen.set(controller, pick);
  }
  return chosen;
}
