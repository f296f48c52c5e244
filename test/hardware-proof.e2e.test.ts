// Proof of hardware as dishonest and honest suppliers meet it, every part a real process: a
// coordinator and five workers. This machine has no GPU, so GPUs are seen through fixture
// `nvidia-smi` scripts, and their work is done by the fixture GPU prover helper, which computes
// the exact product on the CPU and reports the time the card it stands in for would take (a fake
// at the GPU port, DESIGN.md §3). Proofs are sized down (SMALL_PROOF_FLAGS) so the fixture answers
// in milliseconds; the checks are the production ones.
import assert from "node:assert/strict";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, it } from "node:test";
import { TandemClient } from "../src/client/client.ts";
import type { HistoryEntry } from "../src/protocol/nodes.ts";
import { createDatabase, postgresForTests } from "./support/postgres.ts";
import { enrollmentEnv } from "./support/workers.ts";
import {
  GPU_PROVER_FIXTURE,
  NVIDIA_SMI_FIXTURES,
  SMALL_PROOF_FLAGS,
  eventually,
  spawnTandem,
  type TandemProcess,
} from "./support/processes.ts";

const pg = await postgresForTests();
after(() => (pg.skip ? undefined : pg.stop()));

const databases: Array<{ name: string; url: () => Promise<string | undefined>; skip?: string }> = [
  { name: "SQLite", url: () => Promise.resolve(undefined) },
  pg.skip
    ? { name: "PostgreSQL", url: () => Promise.resolve(undefined), skip: pg.reason }
    : { name: "PostgreSQL", url: () => createDatabase(pg.url, `proof_${Date.now()}`) },
];

interface ProofDevice {
  device: string;
  claimedModel: string | null;
  provenModel: string | null;
  verdict: string;
}

const proofRows = (items: HistoryEntry[]) =>
  items.filter((e) => e.action === "verification-passed" || e.action === "verification-failed");

for (const database of databases) {
  describe(`proof of hardware on ${database.name}`, { skip: database.skip ?? false }, () => {
    const processes: TandemProcess[] = [];
    let home: string;
    after(async () => {
      await Promise.all(processes.map((p) => p.kill("SIGKILL")));
      await rm(home, { recursive: true, force: true });
    });

    it("rents a node only as what it proved: fake H100s never, a faked 3080 as the 3060 Ti it is", async () => {
      home = await mkdtemp(join(tmpdir(), "tandem-proof-"));
      const databaseUrl = await database.url();
      const coordinator = spawnTandem(
        [
          "coordinator",
          "--port",
          "0",
          "--json",
          "--log-level",
          "warn",
          ...SMALL_PROOF_FLAGS,
          ...(databaseUrl === undefined ? [] : ["--database-url", databaseUrl]),
        ],
        { TANDEM_HOME: join(home, "coordinator") },
      );
      processes.push(coordinator);
      const { url } = JSON.parse(await coordinator.line(/^\{/)) as { url: string };
      const supplier = await new TandemClient({ baseUrl: url }).createAccount({
        roles: ["supplier"],
      });
      const startWorker = async (
        name: string,
        args: string[],
        env: Record<string, string> = {},
      ): Promise<string> => {
        const worker = spawnTandem(
          [
            ...["worker", "start", "--json", "--no-job-networks"],
            ...["--region", "eu-west", "--zone", "eu-west-a", ...args],
          ],
          {
            TANDEM_HOME: join(home, name),
            ...(await enrollmentEnv(url, supplier.apiKey)),
            ...env,
          },
        );
        processes.push(worker);
        return (JSON.parse(await worker.line(/^\{/)) as { nodeId: string }).nodeId;
      };
      const smi = (fixture: string) => [
        "--nvidia-smi",
        join(NVIDIA_SMI_FIXTURES, fixture, "nvidia-smi"),
      ];
      const prover = ["--gpu-prover", GPU_PROVER_FIXTURE];

      // A CPU machine whose nvidia-smi claims 8× H100, with the stock worker: nothing can do the
      // GPU work. The same machine with a helper that does the work on its CPU: far too slow.
      const stockLiar = await startWorker("stock-liar", smi("h100x8"));
      const cpuLiar = await startWorker("cpu-liar", [...smi("h100x8"), ...prover], {
        TANDEM_FIXTURE_CARD: "h100-80gb",
        TANDEM_FIXTURE_TIMING: "real",
      });
      // A 3060 Ti whose nvidia-smi was patched to say RTX 3080.
      const faked3080 = await startWorker("faked-3080", [...smi("rtx3080"), ...prover], {
        TANDEM_FIXTURE_CARD: "rtx-3060-ti",
      });
      const honest4090 = await startWorker("honest-4090", [...smi("rtx4090"), ...prover], {
        TANDEM_FIXTURE_CARD: "rtx-4090",
      });
      const cpu = await startWorker("cpu", smi("none"));

      const publicApi = new TandemClient({ baseUrl: url });
      const provenBy = async (nodeId: string) =>
        proofRows((await publicApi.nodeHistory(nodeId)).items).at(-1);
      for (const nodeId of [faked3080, honest4090, cpu]) {
        await eventually(async () => {
          const node = await publicApi.getNode(nodeId);
          return node.status === "available" ? node : undefined;
        }, `${nodeId} to be proven and available`);
      }
      for (const nodeId of [stockLiar, cpuLiar]) {
        const row = await eventually(() => provenBy(nodeId), `${nodeId}'s proof to be judged`);
        assert.equal(row.action, "verification-failed", JSON.stringify(row.detail));
        assert.equal((await publicApi.getNode(nodeId)).status, "unverified");
      }

      const stockVerdicts = ((await provenBy(stockLiar))!.detail.devices as ProofDevice[]).map(
        (d) => d.verdict,
      );
      assert.deepEqual(stockVerdicts, Array(8).fill("device-error"), "8 GPUs, 8 proofs");
      // Doing the work on a CPU: too slow for an H100, or not even done within the deadline.
      for (const d of (await provenBy(cpuLiar))!.detail.devices as ProofDevice[]) {
        assert.deepEqual([d.claimedModel, d.provenModel], ["h100-80gb", null]);
        assert.ok(["too-slow", "late"].includes(d.verdict), d.verdict);
      }

      // The faked 3080 is rented as the 3060 Ti it proved to be, and the history says both.
      const proven3060 = await publicApi.getNode(faked3080);
      assert.deepEqual([proven3060.gpuModel, proven3060.gpuCount], ["rtx-3060-ti", 1]);
      const mislabel = (await provenBy(faked3080))!;
      assert.equal(mislabel.action, "verification-passed");
      assert.deepEqual(
        (mislabel.detail.devices as ProofDevice[]).map((d) => [d.claimedModel, d.provenModel]),
        [["rtx-3080", "rtx-3060-ti"]],
      );
      assert.equal((await publicApi.getNode(honest4090)).gpuModel, "rtx-4090");
      const cpuProof = (await provenBy(cpu))!;
      assert.ok(
        (cpuProof.detail.devices as ProofDevice[]).every((d) => d.device.startsWith("cpu:")),
        "a CPU node proves each of its cores",
      );

      // Only what was proven can be found: no H100 and no 3080 for rent.
      for (const gpuModel of ["h100-80gb", "rtx-3080"]) {
        const listed = await publicApi.listNodes({ gpuModel, status: "available", limit: 10 });
        assert.deepEqual(listed.items, [], `${gpuModel} for rent`);
      }
      const listed3060 = await publicApi.listNodes({ gpuModel: "rtx-3060-ti", limit: 10 });
      assert.deepEqual(
        listed3060.items.map((n) => n.id),
        [faked3080],
      );
    });
  });
}
