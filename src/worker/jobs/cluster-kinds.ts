import type { JobStartMessage } from "../../protocol/worker-messages.ts";
import type { TlsPaths } from "./job-tls.ts";

/**
 * What one rank of each cluster kind runs, and with which rendezvous environment. Every kind
 * gets Tandem's own variables and the engines' (torch's env:// rendezvous reads MASTER_ADDR,
 * MASTER_PORT, RANK, WORLD_SIZE; Dask's Client() reads DASK_SCHEDULER_ADDRESS).
 *
 * Multi-process ranks (the Dask scheduler beside the client, Ray's head beside the command) run
 * under one `sh` in one sandbox: the helper goes to the background, the user's command is
 * `exec`ed, and when it ends the sandbox's pid namespace takes the helper down with it.
 *
 * Engine TLS (issue 14 item 3, src/protocol/cluster-tls.ts): with `ctx.tls`, Dask's scheduler and
 * workers listen on `tls://` with the cluster's certificate and accept only peers that present a
 * certificate of the cluster's CA; every Dask process of the rank (the user's `Client()` too) gets
 * the same through distributed's configuration variables, and encryption is required. Ray gets
 * its TLS variables (RAY_USE_TLS…): untested here, where Ray cannot be installed. torch has no
 * TLS of its own: the cluster's encrypted overlay network is what fences its rendezvous.
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
  /** The cluster's TLS files inside the job, when its start carried them (kinds dask and ray). */
  tls?: TlsPaths | undefined;
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
      const { tls } = ctx;
      const address = `${tls === undefined ? "tcp" : "tls"}://${head.address}:${head.port}`;
      env.DASK_SCHEDULER_ADDRESS = address;
      if (tls !== undefined) Object.assign(env, daskTlsEnv(tls));
      const tlsFlags =
        tls === undefined
          ? []
          : ["--tls-ca-file", tls.caFile, "--tls-cert", tls.certFile, "--tls-key", tls.keyFile];
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
            ...tlsFlags,
          ],
          env,
        };
      }
      const schedulerTls = tls === undefined ? "" : ` --protocol tls ${tlsFlags.join(" ")}`;
      const scheduler = `"${ctx.python}" -m distributed.cli.dask_scheduler --host 0.0.0.0 --port ${head.port}${schedulerTls} --no-dashboard 1>&2 &`;
      return {
        command: ["sh", "-c", `${scheduler}\nexec "$@"`, "tandem-dask-head", ...job.command],
        env,
      };
    }
    case "ray": {
      if (ctx.tls !== undefined)
        Object.assign(env, {
          RAY_USE_TLS: "1",
          RAY_TLS_SERVER_CERT: ctx.tls.certFile,
          RAY_TLS_SERVER_KEY: ctx.tls.keyFile,
          RAY_TLS_CA_CERT: ctx.tls.caFile,
        });
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

/**
 * distributed's configuration for the cluster's certificate, as environment variables (read by
 * every Dask process of the rank, the user's `Client()` included): one leaf for every role,
 * trusted through the cluster's CA, and no plain connection accepted or made.
 */
function daskTlsEnv(tls: TlsPaths): Record<string, string> {
  const env: Record<string, string> = {
    DASK_DISTRIBUTED__COMM__TLS__CA_FILE: tls.caFile,
    DASK_DISTRIBUTED__COMM__REQUIRE_ENCRYPTION: "True",
  };
  for (const role of ["SCHEDULER", "WORKER", "CLIENT"]) {
    env[`DASK_DISTRIBUTED__COMM__TLS__${role}__CERT`] = tls.certFile;
    env[`DASK_DISTRIBUTED__COMM__TLS__${role}__KEY`] = tls.keyFile;
  }
  return env;
}
