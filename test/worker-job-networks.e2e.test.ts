// A real `tandem worker start` (job networks are on by default) on a simulated host (test/support/hosts.ts), its
// coordinator on the root namespace's wan address: at start the worker removes the job networks a
// killed previous run of it left (namespace, veth, nftables table) and reports that it can isolate.
import assert from "node:assert/strict";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { after, before, describe, it } from "node:test";
import { TandemClient } from "../src/client/client.ts";
import { SMALL_PROOF_POLICY } from "../src/coordinator/config.ts";
import { startCoordinator, type Coordinator } from "../src/coordinator/main.ts";
import { workerTagOf } from "../src/worker/network/job-networks.ts";
import { createHosts, type Hosts } from "./support/hosts.ts";
import { jobNetworkLeftovers, startJobNetworkDriver } from "./support/job-network-driver.ts";
import { TANDEM_BIN } from "./support/processes.ts";
import { enrollmentEnv } from "./support/workers.ts";

describe(
  "worker start with job networks",
  { skip: process.getuid?.() !== 0 && "needs root" },
  () => {
    let hosts: Hosts;
    let coordinator: Coordinator;
    let dir = "";
    before(async () => {
      dir = await mkdtemp(join(tmpdir(), "tandem-worker-netns-"));
      hosts = await createHosts({ hosts: 1 });
      coordinator = await startCoordinator({
        home: join(dir, "coordinator"),
        host: hosts.rootAddress,
        port: 0,
        logLevel: "silent",
        proof: SMALL_PROOF_POLICY,
      });
    });
    after(async () => {
      await coordinator.close();
      await hosts.destroy();
      await rm(dir, { recursive: true, force: true });
    });

    it("sweeps what a killed run left and reports isolation", async () => {
      const host = hosts.hosts[0]!;
      const home = join(dir, "worker");
      const tag = workerTagOf(home);
      const leftovers = () => jobNetworkLeftovers(hosts, host, tag);
      // A previous run of this worker, SIGKILLed with a rank network in place.
      const killed = startJobNetworkDriver(hosts, host);
      try {
        await killed.create({ workerTag: tag, internet: true });
        await new Promise((resolve) => {
          killed.child.once("close", resolve);
          killed.child.kill("SIGKILL");
        });
        assert.equal((await leftovers()).length, 3);

        const admin = new TandemClient({
          baseUrl: coordinator.url,
          apiKey: coordinator.createdAdminKey!,
        });
        const supplier = await admin.createAccount({ roles: ["supplier"] });
        const env = await enrollmentEnv(coordinator.url, supplier.apiKey);
        const worker = hosts.spawn(
          host,
          [
            process.execPath,
            TANDEM_BIN,
            "worker",
            "start",
            "--json",
            "--region",
            "eu-west",
            "--zone",
            "eu-west-a",
            "--home",
            home,
            "--insecure",
          ],
          {
            env: { PATH: process.env.PATH ?? "/usr/bin:/bin", HOME: dir, ...env },
            stdio: ["ignore", "ignore", "pipe"],
          },
        );
        const logged: Array<Record<string, unknown>> = [];
        const report = await new Promise<Record<string, unknown>>((resolve, reject) => {
          const timer = setTimeout(
            () => reject(new Error(`no "job networks" line: ${JSON.stringify(logged)}`)),
            60_000,
          );
          createInterface({ input: worker.stderr! }).on("line", (line) => {
            let entry: Record<string, unknown>;
            try {
              entry = JSON.parse(line) as Record<string, unknown>;
            } catch {
              return;
            }
            logged.push(entry);
            if (entry.message === "job networks") {
              clearTimeout(timer);
              resolve(entry);
            }
          });
          worker.once("close", (code) =>
            reject(new Error(`worker exited ${code}: ${JSON.stringify(logged)}`)),
          );
        });
        assert.equal(report.isolation, true, JSON.stringify(report));
        assert.equal(report.workerTag, tag);
        const swept = logged.find((e) => e.message === "removed job networks a previous run left");
        assert.equal(
          (swept?.namespaces as string[] | undefined)?.length,
          1,
          JSON.stringify(logged),
        );
        assert.deepEqual(await leftovers(), []);
        worker.kill("SIGTERM");
      } finally {
        killed.child.kill("SIGKILL");
      }
    });
  },
);
