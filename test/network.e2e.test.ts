// A supplier's day, with every part a real process: a coordinator, two workers (one with an RTX
// 4090 seen through a fixture nvidia-smi, since this machine has no GPU), the CLI. A worker killed
// with SIGKILL goes offline after missed heartbeats; a revoked device is disconnected for good.
import assert from "node:assert/strict";
import { mkdtemp, readFile, rm, stat } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, it } from "node:test";
import { TandemClient } from "../src/client/client.ts";
import { createDatabase, postgresForTests } from "./support/postgres.ts";
import { enrollmentEnv } from "./support/workers.ts";
import {
  GPU_PROVER_FIXTURE,
  NVIDIA_SMI_FIXTURES,
  eventually,
  spawnTandem,
  type TandemProcess,
  SMALL_PROOF_FLAGS,
} from "./support/processes.ts";

const HEARTBEAT_MS = 250;
const pg = await postgresForTests();
after(() => (pg.skip ? undefined : pg.stop()));

const databases: Array<{ name: string; url: () => Promise<string | undefined>; skip?: string }> = [
  { name: "SQLite", url: () => Promise.resolve(undefined) },
  pg.skip
    ? { name: "PostgreSQL", url: () => Promise.resolve(undefined), skip: pg.reason }
    : { name: "PostgreSQL", url: () => createDatabase(pg.url, `e2e_${Date.now()}`) },
];

for (const database of databases) {
  describe(`a network on ${database.name}`, { skip: database.skip ?? false }, () => {
    const processes: TandemProcess[] = [];
    let home: string;
    after(async () => {
      await Promise.all(processes.map((p) => p.kill("SIGKILL")));
      await rm(home, { recursive: true, force: true });
    });

    it("registers workers, detects a SIGKILLed one, and shuts a revoked device out for good", async () => {
      home = await mkdtemp(join(tmpdir(), "tandem-e2e-"));
      const databaseUrl = await database.url();
      const coordinator = spawnTandem(
        [
          "coordinator",
          ...SMALL_PROOF_FLAGS,
          "--port",
          "0",
          "--json",
          "--log-level",
          "warn",
          "--heartbeat-interval-ms",
          String(HEARTBEAT_MS),
          ...(databaseUrl === undefined ? [] : ["--database-url", databaseUrl]),
        ],
        { TANDEM_HOME: join(home, "coordinator") },
      );
      processes.push(coordinator);
      const { url } = JSON.parse(await coordinator.line(/^\{/)) as { url: string };

      const adminKeyPath = join(home, "coordinator", "admin.key");
      assert.equal((await stat(adminKeyPath)).mode & 0o777, 0o600);
      const admin = new TandemClient({
        baseUrl: url,
        apiKey: (await readFile(adminKeyPath, "utf8")).trim(),
      });
      const supplier = await new TandemClient({ baseUrl: url }).createAccount({
        roles: ["supplier"],
      });

      const startWorker = async (name: string, zone: string, extra: string[] = []) => {
        const worker = spawnTandem(
          ["worker", "start", "--json", "--region", "eu-west", "--zone", zone, ...extra],
          { TANDEM_HOME: join(home, name), ...(await enrollmentEnv(url, supplier.apiKey)) },
        );
        processes.push(worker);
        return worker;
      };
      const gpuWorker = await startWorker("w1", "eu-west-a", [
        "--nvidia-smi",
        join(NVIDIA_SMI_FIXTURES, "rtx4090", "nvidia-smi"),
        ...["--gpu-prover", GPU_PROVER_FIXTURE],
      ]);
      const cpuWorker = await startWorker("w2", "eu-west-b", [
        ...["--max-memory", "1GiB", "--max-cpus", "0.5", "--max-pids", "512", "--max-disk", "64M"],
      ]);
      const ids1 = JSON.parse(await gpuWorker.line(/^\{/)) as { deviceId: string; nodeId: string };
      const ids2 = JSON.parse(await cpuWorker.line(/^\{/)) as {
        deviceId: string;
        nodeId: string;
        offer: unknown;
      };
      assert.deepEqual(
        ids2.offer,
        { memoryMiB: 1024, cpuCores: 0.5, pids: 512, diskMiB: 64 },
        "the --max-* flags are the offer each rank gets",
      );
      const greedy = await startWorker("w3", "eu-west-c", ["--max-cpus", "1000"]);
      assert.equal(await greedy.exited, 1, "an offer beyond the machine fails the start");
      assert.match(greedy.stdout.join("\n"), /--max-cpus 1000 is more than this machine has/);
      assert.equal((await stat(join(home, "w1", "worker", "device.key"))).mode & 0o777, 0o600);

      const publicApi = new TandemClient({ baseUrl: url });
      await eventually(async () => {
        const stats = await publicApi.networkStats();
        return stats.nodes.byStatus.available === 2 ? stats : undefined;
      }, "both workers to pass the proof of hardware and be available");
      const gpuNode = await publicApi.getNode(ids1.nodeId);
      assert.deepEqual(
        [gpuNode.gpuModel, gpuNode.gpuCount, gpuNode.zone],
        ["rtx-4090", 1, "eu-west-a"],
      );

      const cli = spawnTandem(["nodes", "list", "--json", "--gpu", "rtx-4090"], {
        TANDEM_URL: url,
        TANDEM_HOME: home,
      });
      assert.equal(await cli.exited, 0);
      const listed = JSON.parse(cli.stdout.join("\n")) as { items: Array<{ id: string }> };
      assert.deepEqual(
        listed.items.map((n) => n.id),
        [ids1.nodeId],
      );

      assert.equal(await gpuWorker.kill("SIGKILL"), "SIGKILL");
      const offline = await eventually(async () => {
        const node = await publicApi.getNode(ids1.nodeId);
        return node.status === "offline" ? node : undefined;
      }, "the killed worker to go offline");
      assert.equal(offline.status, "offline");
      const history = await publicApi.nodeHistory(ids1.nodeId);
      const last = history.items.at(-1)!;
      assert.deepEqual(
        [last.from, last.to, last.detail.reason],
        // Killed, its connection closed: declared at its fencing bound for that.
        ["available", "offline", "connection closed and not reopened"],
      );

      await admin.revokeDevice(ids2.deviceId, "test: compromised");
      assert.equal(await cpuWorker.exited, 3, "a revoked worker stops and says why");
      assert.equal((await publicApi.getNode(ids2.nodeId)).status, "revoked");
      const again = await startWorker("w2", "eu-west-b");
      assert.equal(await again.exited, 1);
      assert.equal(
        (JSON.parse(again.stdout.join("\n")) as { error: { code: string } }).error.code,
        "DEVICE_REVOKED",
      );

      assert.equal(await coordinator.kill("SIGTERM"), 0, "the coordinator shuts down cleanly");
    });
  });
}
