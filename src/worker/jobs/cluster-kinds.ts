import type { JobStartMessage } from "../../protocol/worker-messages.ts";

/**
 * What one rank of each cluster kind runs, and with which rendezvous environment. Every kind
 * gets Tandem's own variables and the engines' (torch's env:// rendezvous reads MASTER_ADDR,
 * MASTER_PORT, RANK, WORLD_SIZE; Dask's Client() reads DASK_SCHEDULER_ADDRESS).
 *
 * Multi-process ranks (the Dask scheduler beside the client, Ray's head beside the command) run
 * under one `sh` in one sandbox: the helper goes to the background, the user's command is
 * `exec`ed, and when it ends the sandbox's pid namespace takes the helper down with it.
 */
export interface RankPlan {
  command: string[];
  env: Record<string, string>;
}

export interface RankContext {
  /** The head's address and rendezvous port (for the head itself: its own port). */
  head: { address: string; port: number };
  /** GPU indices this node serves (empty on a CPU-only node). */
  gpuIndices: readonly number[];
  /** The Python interpreter with the engines (Debian's: /usr/bin/python3). */
  python: string;
}

export function planRank(job: JobStartMessage, ctx: RankContext): RankPlan {
  const { head } = ctx;
  const env: Record<string, string> = {
    ...job.env,
    TANDEM_CLUSTER_ID: job.clusterId,
    TANDEM_RANK: String(job.rank),
    TANDEM_WORLD_SIZE: String(job.worldSize),
    TANDEM_HEAD_ADDR: `${head.address}:${head.port}`,
    MASTER_ADDR: head.address,
    MASTER_PORT: String(head.port),
    RANK: String(job.rank),
    WORLD_SIZE: String(job.worldSize),
    LOCAL_RANK: "0",
    CUDA_VISIBLE_DEVICES: ctx.gpuIndices.join(","),
  };
  const isHead = job.rank === 0;
  switch (job.kind) {
    case "batch":
    case "torch":
      return { command: [...job.command], env };
    case "dask": {
      const address = `tcp://${head.address}:${head.port}`;
      env.DASK_SCHEDULER_ADDRESS = address;
      if (!isHead) {
        return {
          command: [
            ctx.python,
            "-m",
            "distributed.cli.dask_worker",
            address,
            "--nthreads",
            "1",
            "--no-dashboard",
            "--nanny",
          ],
          env,
        };
      }
      const scheduler = `"${ctx.python}" -m distributed.cli.dask_scheduler --host 0.0.0.0 --port ${head.port} --no-dashboard 1>&2 &`;
      return {
        command: ["sh", "-c", `${scheduler}\nexec "$@"`, "tandem-dask-head", ...job.command],
        env,
      };
    }
    case "ray": {
      if (!isHead)
        return {
          command: ["ray", "start", "--address", `${head.address}:${head.port}`, "--block"],
          env,
        };
      env.RAY_ADDRESS = `${head.address}:${head.port}`;
      const rayHead = `ray start --head --port ${head.port} --block 1>&2 &`;
      return {
        command: ["sh", "-c", `${rayHead}\nexec "$@"`, "tandem-ray-head", ...job.command],
        env,
      };
    }
    case "container":
      return { command: [...job.command], env };
    default:
      return job.kind satisfies never;
  }
}
