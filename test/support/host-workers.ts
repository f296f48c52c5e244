/**
 * Real workers on simulated hosts (hosts.ts): one `tandem worker start --insecure` per host (the
 * coordinator is plain http on the wan, which workers refuse without --insecure), enrolled for one
 * supplier, and the cluster helpers the cross-host e2e tests share.
 */
import type { ChildProcess } from "node:child_process";
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { TandemClient } from "../../src/client/client.ts";
import type { ClusterView } from "../../src/protocol/clusters.ts";
import { workerTagOf } from "../../src/worker/network/job-networks.ts";
import type { Hosts, SimulatedHost } from "./hosts.ts";
import { eventually, TANDEM_BIN } from "./processes.ts";
import { enrollmentEnv } from "./workers.ts";

/** One worker process on its host. */
export interface HostWorker {
  readonly index: number;
  readonly host: SimulatedHost;
  readonly home: string;
  /** Its job networks' tag (`tdm-<tag>-…`). */
  readonly tag: string;
  readonly process: ChildProcess;
  readonly nodeId: string;
}

/** Statuses a cluster ends in. */
export const FINAL_STATUSES: readonly string[] = ["completed", "failed", "terminated", "expired"];

/**
 * Starts a worker on every host (homes under `dir`, zones eu-west-a/b/c in turn) and resolves once
 * all are verified and available; a failure carries the workers' logs.
 */
export async function startHostWorkers(options: {
  hosts: Hosts;
  coordinatorUrl: string;
  supplierKey: string;
  dir: string;
}): Promise<{ workers: HostWorker[]; logs: string[] }> {
  const { hosts, coordinatorUrl, dir } = options;
  const logs: string[] = [];
  const started = [];
  for (const [index, host] of hosts.hosts.entries()) {
    const home = join(dir, `worker-${index}`);
    const env = await enrollmentEnv(coordinatorUrl, options.supplierKey);
    const argv = [process.execPath, TANDEM_BIN, "worker", "start", "--region", "eu-west"];
    const child = hosts.spawn(
      host,
      [...argv, "--zone", `eu-west-${"abc"[index % 3]}`, "--home", home, "--insecure"],
      {
        env: { PATH: process.env.PATH ?? "/usr/bin:/bin", HOME: dir, ...env },
        stdio: ["ignore", "ignore", "pipe"],
      },
    );
    child.stderr?.on("data", (d: Buffer) => logs.push(`[${index}] ${d.toString()}`));
    started.push({ index, host, home, tag: workerTagOf(home), process: child });
  }
  const anonymous = new TandemClient({ baseUrl: coordinatorUrl });
  await eventually(
    async () =>
      (await anonymous.networkStats()).nodes.byStatus.available === started.length
        ? true
        : undefined,
    `${started.length} verified workers`,
    120_000,
  ).catch((error: unknown) => {
    throw new Error(logs.join(""), { cause: error });
  });
  const workers = await Promise.all(
    started.map(async (worker) => {
      const saved = await readFile(join(worker.home, "device.json"), "utf8");
      return { ...worker, nodeId: (JSON.parse(saved) as { nodeId: string }).nodeId };
    }),
  );
  return { workers, logs };
}

/** SIGTERMs every worker still running and waits for all to exit. */
export async function stopHostWorkers(
  workers: readonly { process: ChildProcess }[],
): Promise<void> {
  await Promise.all(
    workers.map(
      ({ process: child }) =>
        new Promise((resolve) => {
          if (child.exitCode !== null || child.signalCode !== null) return resolve(undefined);
          child.once("exit", resolve);
          child.kill("SIGTERM");
        }),
    ),
  );
}

/** Resolves with the cluster's view once it has ended. */
export function clusterEnded(
  client: TandemClient,
  clusterId: string,
  timeoutMs = 300_000,
): Promise<ClusterView> {
  return eventually(
    async () => {
      const view = await client.getCluster(clusterId);
      return FINAL_STATUSES.includes(view.status) ? view : undefined;
    },
    `cluster ${clusterId} to end`,
    timeoutMs,
  );
}

/** The cluster's log, one `[rank] text` line each. */
export async function clusterLogText(client: TandemClient, clusterId: string): Promise<string> {
  return (await client.clusterLogs(clusterId)).items.map((l) => `[${l.rank}] ${l.text}`).join("\n");
}
