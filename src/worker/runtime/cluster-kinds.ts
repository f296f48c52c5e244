/**
 * What one node of a cluster runs, per cluster kind (issue 3 item 4): the processes, each to be
 * started as its own job through a `JobRuntime`, and the rendezvous environment they share.
 *
 * - batch: the command, on every node.
 * - torch: the command as one rank of a torch.distributed job; `init_process_group("gloo"|"nccl")`
 *   with the default env:// method reads MASTER_ADDR, MASTER_PORT, RANK and WORLD_SIZE.
 * - dask: the head runs the scheduler (a service) and the command as a client against it
 *   (DASK_SCHEDULER_ADDRESS, which `distributed.Client()` reads); the other nodes run a worker.
 * - ray: `ray start --head` on the head, `ray start --address` on the others (services), then the
 *   command on the head with RAY_ADDRESS.
 * - container: an OCI image through podman; there is no podman runtime yet, so it is refused.
 *
 * A "service" runs until the cluster ends (the caller kills it); the "main" process's exit is the
 * rank's result. Engines listen on all interfaces: their peers are other machines, which is why
 * cluster jobs use network "shared" (see bwrap-runtime.ts for what that exposes).
 */
import { JobRuntimeError } from "./job-runtime.ts";

export type ClusterKind = "batch" | "torch" | "dask" | "ray" | "container";

/** Where this node stands in its cluster. */
export interface Rendezvous {
  clusterId: string;
  /** 0 is the head. */
  rank: number;
  worldSize: number;
  /** Address the other nodes reach the head at. */
  headAddr: string;
  /** The head's rendezvous port: torch MASTER_PORT, the dask scheduler's, ray's GCS. */
  headPort: number;
  /** This node's GPU indexes given to the cluster; [] hides every GPU (CUDA_VISIBLE_DEVICES=""). */
  gpuIndexes: readonly number[];
}

/** One process of a node: its role, a name for logs and job ids, argv and extra environment. */
export interface NodeProcess {
  role: "main" | "service";
  name: string;
  command: string[];
  env: Record<string, string>;
}

/** The environment every process of a cluster node gets (on top of the job's own). */
export function rendezvousEnv(r: Rendezvous): Record<string, string> {
  return {
    TANDEM_CLUSTER_ID: r.clusterId,
    TANDEM_RANK: String(r.rank),
    TANDEM_WORLD_SIZE: String(r.worldSize),
    TANDEM_HEAD_ADDR: r.headAddr,
    MASTER_ADDR: r.headAddr,
    MASTER_PORT: String(r.headPort),
    RANK: String(r.rank),
    WORLD_SIZE: String(r.worldSize),
    LOCAL_RANK: "0",
    LOCAL_WORLD_SIZE: "1",
    CUDA_VISIBLE_DEVICES: r.gpuIndexes.join(","),
  };
}

/** The processes one node runs for a cluster of `kind`. */
export function nodeProcesses(
  kind: ClusterKind,
  r: Rendezvous,
  command: readonly string[],
  options: { python?: string; ray?: string } = {},
): NodeProcess[] {
  const env = rendezvousEnv(r);
  const python = options.python ?? "/usr/bin/python3";
  const head = r.rank === 0;
  const main = (extra: Record<string, string> = {}): NodeProcess => ({
    role: "main",
    name: "command",
    command: [...command],
    env: { ...env, ...extra },
  });
  switch (kind) {
    case "batch":
    case "torch":
      return [main()];
    case "dask": {
      const scheduler = `tcp://${r.headAddr}:${r.headPort}`;
      if (head) {
        return [
          {
            role: "service",
            name: "dask-scheduler",
            command: [
              python,
              "-m",
              "distributed.cli.dask_scheduler",
              "--host",
              "0.0.0.0",
              "--port",
              String(r.headPort),
              "--no-dashboard",
            ],
            env,
          },
          main({ DASK_SCHEDULER_ADDRESS: scheduler }),
        ];
      }
      return [
        {
          role: "service",
          name: "dask-worker",
          command: [
            python,
            "-m",
            "distributed.cli.dask_worker",
            scheduler,
            "--name",
            `rank-${r.rank}`,
            "--no-dashboard",
            "--death-timeout",
            "60",
          ],
          env,
        },
      ];
    }
    case "ray": {
      const ray = options.ray ?? "ray";
      const address = `${r.headAddr}:${r.headPort}`;
      const start = head
        ? [ray, "start", "--head", "--port", String(r.headPort), "--block"]
        : [ray, "start", "--address", address, "--block"];
      const service: NodeProcess = {
        role: "service",
        name: head ? "ray-head" : "ray-worker",
        command: start,
        env,
      };
      return head ? [service, main({ RAY_ADDRESS: address })] : [service];
    }
    case "container":
      throw new JobRuntimeError(
        "RUNTIME_UNAVAILABLE",
        "container clusters need the podman runtime, which this worker does not have",
      );
  }
}
