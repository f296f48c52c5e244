/**
 * The OCI runtime for `container` clusters: the rank runs in the cluster's image through podman.
 *
 * Isolation is the container's: its own mount, pid, ipc and uts namespaces, the image's root
 * file system read-only with a private /tmp, the job dir as /job (its cwd and HOME, the only
 * writable place), every capability dropped, no privilege gain (no_new_privs), an unprivileged
 * uid (nobody, 65534), the job's environment only, and podman's cgroup limits for memory, CPU and
 * tasks. `--init` puts a real init as pid 1 so a SIGTERM reaches the command and zombies are
 * reaped; the container is removed when it ends, and every process with it.
 *
 * Images are never pulled (`--pull never`): a supplier loads the images it offers (`podman
 * load`/`podman import`); an image missing here fails the rank's start with a clear message.
 *
 * Podman 4.3 on this kind of host (MACHINE-NOTES): runs as root with `runtime = "runc"` (crun
 * rejects hybrid cgroups) and no default ulimits above the hard limits; the worker points podman
 * at its own containers.conf saying so, leaving the host's podman configuration alone.
 */
import { execFile, spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { existsSync } from "node:fs";
import { mkdir, rm, writeFile } from "node:fs/promises";
import path from "node:path";
import {
  JobRuntimeError,
  jobEnvironment,
  prepareJobDir,
  validateJobSpec,
  type JobRuntime,
  type JobSpec,
  type LimitsEnforcedBy,
  type RunningJob,
} from "./job-runtime.ts";
import { HOST_PATH } from "./launch.ts";
import { diskWatch, superviseJob } from "./supervise.ts";

/** The uid and gid containers run as: `nobody`, which owns nothing on the host. */
const CONTAINER_USER = { uid: 65_534, gid: 65_534 };
/** An image reference podman accepts: registry/name:tag or @digest, no spaces or flags. */
const IMAGE = /^[a-z0-9][a-z0-9._/:@-]{0,255}$/;
const PROBE_TIMEOUT_MS = 30_000;

export const CONTAINERS_CONF = `# Written by the Tandem worker for the podman it runs jobs with.
[containers]
default_ulimits = []
[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"
`;

/** podman's --network for a job's network: the host's, none, or the job's own namespace. */
function podmanNetwork(network: JobSpec["network"]): string {
  if (network === "shared") return "host";
  if (network === "none") return "none";
  return `ns:${network.namespace}`;
}

export interface PodmanRuntimeOptions {
  /** Where the worker keeps its podman configuration (containers.conf is written there). */
  configDir: string;
  podman?: string;
  log?: (message: string, fields?: Record<string, unknown>) => void;
}

/** Answers undefined when podman runs here, else why not. */
export function probePodman(
  podman = "podman",
  env?: NodeJS.ProcessEnv,
): Promise<string | undefined> {
  return new Promise((resolve) => {
    execFile(
      podman,
      ["info", "--format", "{{.Host.OCIRuntime.Name}}"],
      { env: env ?? { PATH: HOST_PATH }, timeout: PROBE_TIMEOUT_MS },
      (error, _stdout, stderr) => {
        if (error === null) resolve(undefined);
        else resolve(`${podman} info failed: ${stderr.trim() || error.message}`);
      },
    );
  });
}

/** The podman runtime, or why this worker cannot run containers. */
export async function createPodmanRuntime(
  options: PodmanRuntimeOptions,
): Promise<{ runtime: JobRuntime & { kind: "podman" } } | { unavailable: string }> {
  const podman = options.podman ?? "podman";
  const log = options.log ?? (() => undefined);
  const confPath = path.join(options.configDir, "containers.conf");
  await writeFile(confPath, CONTAINERS_CONF, { mode: 0o644 });
  const env = { PATH: HOST_PATH, CONTAINERS_CONF: confPath };
  const unavailable = await probePodman(podman, env);
  if (unavailable !== undefined) return { unavailable };
  const cgroup = existsSync("/sys/fs/cgroup/memory") ? "cgroup-v1" : "cgroup-v2";

  const podmanQuietly = (args: string[]) =>
    new Promise<void>((resolve) => {
      execFile(podman, args, { env, timeout: PROBE_TIMEOUT_MS }, () => resolve());
    });

  async function run(spec: JobSpec): Promise<RunningJob> {
    validateJobSpec(spec);
    const image = spec.image;
    if (image === undefined || !IMAGE.test(image))
      throw new JobRuntimeError(
        "INVALID_JOB_SPEC",
        `job ${spec.jobId}: a container needs an image reference (got ${JSON.stringify(image)})`,
      );
    const environment = jobEnvironment(spec, "/job");
    if (Object.values(environment).some((v) => v.includes("\n")))
      throw new JobRuntimeError(
        "INVALID_JOB_SPEC",
        `job ${spec.jobId}: a container's environment values cannot hold newlines`,
      );
    const present = await new Promise<boolean>((resolve) =>
      execFile(podman, ["image", "exists", image], { env, timeout: PROBE_TIMEOUT_MS }, (error) =>
        resolve(error === null),
      ),
    );
    if (!present)
      throw new JobRuntimeError(
        "IMAGE_MISSING",
        `image ${image} is not on this node (images are never pulled: load it with podman load)`,
      );
    await prepareJobDir(spec.jobDir, CONTAINER_USER, spec.files);
    // The environment goes through a root-only file, not argv, which every host user can read.
    const envFile = `${spec.jobDir}.env`;
    await writeFile(
      envFile,
      Object.entries(environment)
        .map(([k, v]) => `${k}=${v}\n`)
        .join(""),
      { mode: 0o600 },
    );
    const name = `tandem-${spec.jobId}-${randomBytes(4).toString("hex")}`;
    const { limits } = spec;
    const enforcedBy: LimitsEnforcedBy = {};
    const limitArgs: string[] = [];
    if (limits.memoryMiB !== undefined) {
      limitArgs.push("--memory", `${limits.memoryMiB}m`);
      enforcedBy.memoryMiB = cgroup;
    }
    if (limits.cpuCores !== undefined) {
      limitArgs.push("--cpus", String(limits.cpuCores));
      enforcedBy.cpuCores = cgroup;
    }
    if (limits.maxProcesses !== undefined) {
      limitArgs.push("--pids-limit", String(limits.maxProcesses));
      enforcedBy.maxProcesses = cgroup;
    }
    if (limits.diskMiB !== undefined) enforcedBy.diskMiB = "watcher";
    if (limits.maxOpenFiles !== undefined) {
      limitArgs.push("--ulimit", `nofile=${limits.maxOpenFiles}:${limits.maxOpenFiles}`);
      enforcedBy.maxOpenFiles = "rlimit";
    }
    const args = [
      "run",
      "--rm",
      "--init",
      "--name",
      name,
      "--pull",
      "never",
      "--log-driver",
      "none",
      "--network",
      podmanNetwork(spec.network),
      "--read-only",
      "--cap-drop",
      "all",
      "--security-opt",
      "no-new-privileges",
      "--user",
      `${CONTAINER_USER.uid}:${CONTAINER_USER.gid}`,
      "--volume",
      `${spec.jobDir}:/job`,
      "--workdir",
      "/job",
      "--env-file",
      envFile,
      ...(spec.devices ?? []).flatMap((device) => ["--device", device]),
      ...limitArgs,
      image,
      ...spec.command,
    ];
    // podman runs in a private dir: conmon writes an `oom` file into its working dir when the
    // kernel OOM-kills a process of the container (measured with podman 4.3 and runc here, where
    // `podman inspect`'s OOMKilled stays false under --init), which is how an OOM kill is told.
    const runDir = `${spec.jobDir}.podman`;
    await mkdir(runDir, { recursive: true, mode: 0o700 });
    const child = spawn(podman, args, { stdio: ["ignore", "pipe", "pipe"], env, cwd: runDir });
    const spawned = await new Promise<unknown>((resolve) => {
      child.once("spawn", () => resolve(undefined));
      child.once("error", (error) => resolve(error));
    });
    if (spawned !== undefined || child.pid === undefined) {
      await rm(envFile, { force: true });
      throw new JobRuntimeError("JOB_START_FAILED", `could not start podman: ${String(spawned)}`, {
        cause: spawned,
      });
    }
    log(`job ${spec.jobId} runs in container ${name} (${image})`, { jobId: spec.jobId, image });
    let oomKilled = false;
    const job = superviseJob({
      disk: diskWatch(spec),
      child: child as typeof child & { pid: number },
      cgroup: undefined,
      limitsEnforcedBy: enforcedBy,
      log,
      terminate: () => podmanQuietly(["kill", "--signal", "TERM", name]),
      forceKill() {
        void podmanQuietly(["kill", "--signal", "KILL", name]);
      },
      oomKilled: () => oomKilled,
      async reap() {
        // `--rm` removes it as podman exits; after a kill of podman itself, make sure.
        await podmanQuietly(["rm", "--force", "--time", "0", name]);
        await rm(envFile, { force: true });
        oomKilled = existsSync(path.join(runDir, "oom"));
        await rm(runDir, { recursive: true, force: true });
      },
      exitStatus: (code, signal) =>
        signal !== null ? { exitCode: null, signal } : { exitCode: code, signal: null },
    });
    // Killing the podman client leaves the container running under conmon: the watchdog asks
    // podman itself.
    return {
      ...job,
      fenceTarget: { pid: child.pid, kill: [podman, "kill", "--signal", "KILL", name] },
    };
  }

  return { runtime: { kind: "podman", run } };
}
