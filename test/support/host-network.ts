/**
 * A Tandem network across simulated hosts (./hosts.ts), for e2e tests of clusters across machines:
 * a real coordinator on the wan (job networks required), and one real `tandem worker start
 * --insecure` per host (plain http on a non-loopback address: the workers must be told that is
 * fine), enrolled for one supplier; it answers once every worker is verified and available.
 */
import { type ChildProcess } from "node:child_process";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { TandemClient } from "../../src/client/client.ts";
import { startCoordinator, type Coordinator } from "../../src/coordinator/main.ts";
import { createHosts, type CreateHostsOptions, type Hosts, type SimulatedHost } from "./hosts.ts";
import { eventually, TANDEM_BIN } from "./processes.ts";
import { enrollmentEnv, fund } from "./workers.ts";
import { SMALL_PROOF_POLICY } from "../../src/coordinator/config.ts";

export interface HostNetwork {
  readonly hosts: Hosts;
  readonly coordinator: Coordinator;
  /** A scratch directory the network's homes live in (removed by close()). */
  readonly dir: string;
  /** What the workers wrote to stderr, each line prefixed with its host's index. */
  readonly workerLogs: readonly string[];
  /** A new consumer account funded with 20 USDC. */
  consumer(): Promise<TandemClient>;
  /** Stops the workers (SIGTERM, waited for), the coordinator, then removes the hosts. */
  close(): Promise<void>;
}

export async function startHostNetwork(
  options: CreateHostsOptions & {
    /** Each host's region (default eu-west); its zone is `<region>-<a|b|c…>` by its index. */
    regionOf?: (host: SimulatedHost) => string;
  },
): Promise<HostNetwork> {
  const dir = await mkdtemp(join(tmpdir(), "tandem-hosts-"));
  const workers: ChildProcess[] = [];
  const workerLogs: string[] = [];
  let hosts: Hosts | undefined;
  let coordinator: Coordinator | undefined;
  const close = async () => {
    for (const worker of workers) worker.kill("SIGTERM");
    await Promise.all(
      workers.map(
        (w) =>
          new Promise((resolve) =>
            w.exitCode === null ? w.once("exit", resolve) : resolve(undefined),
          ),
      ),
    );
    await coordinator?.close();
    await hosts?.destroy();
    await rm(dir, { recursive: true, force: true });
  };
  try {
    hosts = await createHosts(options);
    coordinator = await startCoordinator({
      home: join(dir, "coordinator"),
      host: hosts.rootAddress,
      port: 0,
      logLevel: "silent",
      jobNetworks: "required",
      proof: SMALL_PROOF_POLICY,
    });
    const url = coordinator.url;
    const adminKey = coordinator.createdAdminKey!;
    const admin = new TandemClient({ baseUrl: url, apiKey: adminKey });
    const supplier = await admin.createAccount({ roles: ["supplier"] });
    for (const [i, host] of hosts.hosts.entries()) {
      const env = await enrollmentEnv(url, supplier.apiKey);
      const region = options.regionOf?.(host) ?? "eu-west";
      const zone = `${region}-${String.fromCharCode(97 + (i % 26))}`;
      const argv = [process.execPath, TANDEM_BIN, "worker", "start", "--region", region];
      const worker = hosts.spawn(
        host,
        [...argv, "--zone", zone, "--home", join(dir, `worker-${i}`), "--insecure"],
        {
          env: { PATH: process.env.PATH ?? "/usr/bin:/bin", HOME: dir, ...env },
          stdio: ["ignore", "ignore", "pipe"],
        },
      );
      worker.stderr?.on("data", (d: Buffer) => workerLogs.push(`[${i}] ${d.toString()}`));
      workers.push(worker);
    }
    const anonymous = new TandemClient({ baseUrl: url });
    const count = hosts.hosts.length;
    await eventually(
      async () =>
        (await anonymous.networkStats()).nodes.byStatus.available === count ? true : undefined,
      `${count} verified workers`,
      120_000,
    ).catch((error: unknown) => {
      throw new Error(workerLogs.join(""), { cause: error });
    });
    const consumer = async () => {
      const account = await admin.createAccount({ roles: ["consumer"] });
      await fund({ url, adminKey }, account.accountId, "20");
      return new TandemClient({ baseUrl: url, apiKey: account.apiKey });
    };
    return { hosts, coordinator, dir, workerLogs, consumer, close };
  } catch (error) {
    await close();
    throw error;
  }
}
