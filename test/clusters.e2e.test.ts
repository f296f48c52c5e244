// A consumer's day on a real network: a coordinator and 4 workers as separate processes, jobs in
// real bubblewrap sandboxes, real engines (Debian's python3-torch and python3-distributed).
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import { mkdtemp, readFile, readdir, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { fileURLToPath } from "node:url";
import { TandemApiError, TandemClient } from "../src/client/client.ts";
import type { ClusterView } from "../src/protocol/clusters.ts";
import { importBusyboxImage } from "./support/busybox-image.ts";
import {
  eventually,
  spawnTandem,
  type TandemProcess,
  SMALL_PROOF_FLAGS,
} from "./support/processes.ts";
import { enrollmentEnv } from "./support/workers.ts";

const JOBS = fileURLToPath(new URL("./fixtures/jobs/", import.meta.url));
const FINAL = ["completed", "failed", "terminated", "expired"];

function enginesMissing(): string | undefined {
  const probe = spawnSync("/usr/bin/python3", ["-c", "import torch, distributed"], {
    encoding: "utf8",
  });
  if (probe.status === 0) return undefined;
  const reason = `python3-torch / python3-distributed not importable: ${probe.stderr.trim().split("\n").at(-1) ?? ""}`;
  if (process.env.TANDEM_REQUIRE_ENGINES === "1") throw new Error(reason);
  process.stderr.write(`skipping engine tests: ${reason}\n`);
  return reason;
}

function rayMissing(): string | undefined {
  if (spawnSync("sh", ["-c", "command -v ray"]).status === 0) return undefined;
  const reason = "ray is not on PATH (Debian has no package for it; pip cannot be reached here)";
  process.stderr.write(`skipping the Ray test: ${reason}\n`);
  return reason;
}

const engines = enginesMissing();

function podmanMissing(): string | undefined {
  if (process.getuid?.() !== 0) return "podman runs limited containers only as root here";
  if (spawnSync("podman", ["--version"]).status === 0) return undefined;
  const reason = "podman is not installed (.ci/run installs it)";
  process.stderr.write(`skipping the container test: ${reason}\n`);
  return reason;
}
const podman = podmanMissing();
const IMAGE = `localhost/tandem-e2e-busybox:${process.pid}`;

describe("clusters on a 4-worker network", () => {
  const processes: TandemProcess[] = [];
  let home: string;
  let url: string;
  let consumer: TandemClient;
  let consumerKey: string;
  let anonymous: TandemClient;

  before(async () => {
    home = await mkdtemp(join(tmpdir(), "tandem-clusters-"));
    const coordinator = spawnTandem(
      ["coordinator", ...SMALL_PROOF_FLAGS, "--port", "0", "--json", "--log-level", "warn"],
      { TANDEM_HOME: join(home, "c") },
    );
    processes.push(coordinator);
    url = (JSON.parse(await coordinator.line(/^\{/)) as { url: string }).url;
    anonymous = new TandemClient({ baseUrl: url });
    const account = await anonymous.createAccount({ roles: ["consumer", "supplier"] });
    consumerKey = account.apiKey;
    consumer = new TandemClient({ baseUrl: url, apiKey: consumerKey });
    const admin = (await readFile(join(home, "c", "admin.key"), "utf8")).trim();
    const deposit = await fetch(`${url}/v1/wallet/deposits`, {
      method: "POST",
      headers: {
        "content-type": "application/json",
        authorization: `Bearer ${admin}`,
        "idempotency-key": "seed",
      },
      body: JSON.stringify({ accountId: account.accountId, currency: "USDC", amount: "50" }),
    });
    assert.equal(deposit.status, 201);
    for (const zone of ["a", "b", "c", "a"]) {
      processes.push(
        spawnTandem(
          [
            "worker",
            "start",
            "--region",
            "eu-west",
            "--zone",
            `eu-west-${zone}`,
            "--home",
            join(home, `w${processes.length}`),
          ],
          await enrollmentEnv(url, account.apiKey),
        ),
      );
    }
    await eventually(
      async () =>
        (await anonymous.networkStats()).nodes.byStatus.available === 4 ? true : undefined,
      "4 verified workers",
      60_000,
    );
  });

  after(async () => {
    await Promise.all(processes.map((p) => p.kill("SIGTERM")));
    await rm(home, { recursive: true, force: true });
  });

  async function runToEnd(cluster: ClusterView, timeoutMs = 120_000): Promise<ClusterView> {
    return eventually(
      async () => {
        const view = await consumer.getCluster(cluster.id);
        return FINAL.includes(view.status) ? view : undefined;
      },
      `cluster ${cluster.id} to end`,
      timeoutMs,
    );
  }

  async function logText(clusterId: string): Promise<string> {
    return (await consumer.clusterLogs(clusterId)).items
      .map((l) => `[${l.rank}] ${l.text}`)
      .join("\n");
  }
  /** Deploys a cluster running a fixture script with Debian's Python, waits for it to complete. */
  async function runScript(
    kind: "torch" | "dask" | "ray",
    script: string,
    nodes: number,
  ): Promise<string> {
    const source = await readFile(join(JOBS, script), "utf8");
    const cluster = await consumer.deployCluster({
      kind,
      nodes,
      hours: 1,
      gpuModel: "cpu",
      command: ["/usr/bin/python3", "-c", source],
    });
    const done = await runToEnd(cluster, 300_000);
    const logs = await logText(cluster.id);
    assert.equal(done.status, "completed", logs);
    return logs;
  }

  it("runs a batch command on every node with the rendezvous environment", async () => {
    const cluster = await consumer.deployCluster({
      kind: "batch",
      nodes: 4,
      hours: 1,
      gpuModel: "cpu",
      spreadZones: true,
      command: [
        "sh",
        "-c",
        'echo "rank=$RANK world=$WORLD_SIZE head=$TANDEM_HEAD_ADDR cluster=$TANDEM_CLUSTER_ID"',
      ],
    });
    assert.equal(new Set(cluster.nodes.map((n) => n.zone)).size, 3, "spread over the three zones");
    const done = await runToEnd(cluster);
    const logs = await logText(cluster.id);
    assert.equal(done.status, "completed", JSON.stringify(done.events) + logs);
    for (let rank = 0; rank < 4; rank++)
      assert.match(
        logs,
        new RegExp(
          `\\[${rank}\\] rank=${rank} world=4 head=10\\.77\\.0\\.1:\\d+ cluster=${cluster.id}`,
        ),
      );
    assert.equal(
      (await anonymous.networkStats()).nodes.byStatus.available,
      4,
      "every node is free again",
    );
  });

  it("opens --secret and --secret-file values only inside the workers: the coordinator's files never hold them", async () => {
    const token = `tok-${process.pid}-never-seen-by-the-coordinator`;
    const password = `pw-${process.pid}\nsecond line, exact bytes`;
    const file = join(home, "db-password");
    await writeFile(file, password, { mode: 0o600 });
    const cli = spawnTandem(
      [
        "cluster",
        "deploy",
        "--json",
        "--kind",
        "batch",
        "--nodes",
        "2",
        "--gpu",
        "cpu",
        "--hours",
        "1",
        "--env",
        "PLAIN=shown",
        "--secret",
        `API_TOKEN=${token}`,
        "--secret-file",
        `DB_PASSWORD=${file}`,
        "--",
        "sh",
        "-c",
        'printf %s "$API_TOKEN" | sha256sum; printf %s "$DB_PASSWORD" | sha256sum; echo "$PLAIN"',
      ],
      { TANDEM_URL: url, TANDEM_API_KEY: consumerKey },
    );
    assert.equal(await cli.exited, 0, cli.stderr.join("\n"));
    const deployed = JSON.parse(cli.stdout.join("\n")) as ClusterView;
    const done = await runToEnd(deployed);
    const logs = await logText(deployed.id);
    assert.equal(done.status, "completed", JSON.stringify(done.events) + logs);
    const sha = (value: string) => createHash("sha256").update(value).digest("hex");
    for (const rank of [0, 1]) {
      assert.ok(logs.includes(`[${rank}] ${sha(token)}  -`), logs);
      assert.ok(logs.includes(`[${rank}] ${sha(password)}  -`), logs);
      assert.ok(logs.includes(`[${rank}] shown`), logs);
    }
    const files = (await readdir(join(home, "c"))).filter((n) => n.startsWith("coordinator.db"));
    const stored = Buffer.concat(
      await Promise.all(files.map((n) => readFile(join(home, "c", n)))),
    ).toString("latin1");
    assert.ok(stored.includes(deployed.id) && stored.includes("shown"), "the files were read");
    for (const value of [token, password, "never-seen-by-the-coordinator", "second line"])
      assert.ok(!stored.includes(value), `the coordinator's database holds ${value}`);
  });

  it(
    "runs a container cluster from a local image on every node",
    { skip: podman ?? false },
    async (t) => {
      const removeImage = await importBusyboxImage(IMAGE);
      t.after(removeImage);
      const cluster = await consumer.deployCluster({
        kind: "container",
        image: IMAGE,
        nodes: 2,
        hours: 1,
        gpuModel: "cpu",
        command: ["sh", "-c", 'echo "rank=$RANK world=$WORLD_SIZE uid=$(id -u) cwd=$(pwd)"'],
      });
      const done = await runToEnd(cluster);
      const logs = await logText(cluster.id);
      assert.equal(done.status, "completed", JSON.stringify(done.events) + logs);
      for (let rank = 0; rank < 2; rank++)
        assert.match(logs, new RegExp(`\\[${rank}\\] rank=${rank} world=2 uid=65534 cwd=/job`));
    },
  );

  it(
    "fails a container deploy whose image no node holds, the consumer's cause: no node slashed",
    { skip: podman ?? false },
    async () => {
      const nodesBefore = (await anonymous.listNodes({ limit: 10 })).items;
      const cluster = await consumer.deployCluster({
        kind: "container",
        image: "localhost/tandem-absent-image:1",
        nodes: 1,
        shadow: 1,
        hours: 1,
        gpuModel: "cpu",
        command: ["true"],
      });
      const done = await runToEnd(cluster);
      assert.equal(done.status, "failed", JSON.stringify(done.events));
      const exited = done.events.find((e) => e.type === "rank-exited")!.detail;
      assert.match(
        String(exited.error),
        /image localhost\/tandem-absent-image:1 is not on this node/,
      );
      assert.deepEqual([exited.cause, exited.end], ["consumer", "image-missing"]);
      assert.ok(!done.events.some((e) => e.type === "failover" || e.type === "slashed"));
      assert.equal(done.nodes.filter((n) => n.rank === 0).length, 1, "no other node was tried");
      for (const node of (await anonymous.listNodes({ limit: 10 })).items) {
        const before = nodesBefore.find((n) => n.id === node.id)!;
        assert.ok(node.reputation >= before.reputation, `${node.id} kept its reputation`);
      }
    },
  );

  it("runs a 4-rank torch all-reduce over gloo", { skip: engines ?? false }, async () => {
    const logs = await runScript("torch", "allreduce.py", 4);
    for (let rank = 0; rank < 4; rank++) assert.match(logs, new RegExp(`rank ${rank}/4 sum=10`));
  });

  it(
    "runs a Dask computation through the head's scheduler",
    { skip: engines ?? false },
    async () => {
      const logs = await runScript("dask", "dask_client.py", 4);
      assert.match(logs, /\[0\] workers=3 sum_of_squares=328350/);
    },
  );

  it("runs a Ray driver against the head", { skip: rayMissing() ?? false }, async () => {
    const logs = await runScript("ray", "ray_client.py", 2);
    assert.match(logs, /\[0\] sum_of_squares=328350/);
  });

  it("ends a rank past its memory or disk limit with that reason, as the consumer's: no failover, no slash", async () => {
    const deploy = (limits: { memoryMiB?: number; diskMiB?: number }, command: string[]) =>
      consumer.deployCluster({
        kind: "batch",
        nodes: 1,
        hours: 1,
        gpuModel: "cpu",
        limits,
        command,
      });
    const memory = await deploy({ memoryMiB: 128 }, [
      "/usr/bin/python3",
      "-c",
      'b = b"x" * (512 << 20); print("allocated")',
    ]);
    const disk = await deploy({ diskMiB: 16 }, ["sh", "-c", "head -c 67108864 /dev/zero > big"]);
    for (const [cluster, limit] of [
      [memory, "memory"],
      [disk, "disk"],
    ] as const) {
      const done = await runToEnd(cluster);
      const exited = done.events.find((e) => e.type === "rank-exited");
      assert.equal(done.status, "failed", JSON.stringify(done.events));
      assert.equal(exited?.detail.limitExceeded, limit, JSON.stringify(done.events));
      assert.ok(!done.events.some((e) => e.type === "failover" || e.type === "slashed"));
    }
    const view = await consumer.getCluster(memory.id);
    assert.equal(view.nodes[0]?.limits?.memoryMiB, 128, "the rank ran with the ask");
    assert.equal(view.nodes[0]?.limits?.pids, 4096, "and the node's offer for what it left out");
    await eventually(
      async () =>
        (await anonymous.networkStats()).nodes.byStatus.available === 4 ? true : undefined,
      "every node free again",
      30_000,
    );
  });

  it("terminates a running cluster, frees its nodes and refunds unserved time", async () => {
    const cluster = await consumer.deployCluster({
      kind: "batch",
      nodes: 2,
      hours: 2,
      gpuModel: "cpu",
      command: ["sleep", "600"],
    });
    await eventually(
      async () => ((await consumer.getCluster(cluster.id)).status === "running" ? true : undefined),
      "running",
    );
    const ended = await consumer.terminateCluster(cluster.id);
    assert.equal(ended.status, "terminated");
    await eventually(
      async () =>
        (await anonymous.networkStats()).nodes.byStatus.available === 4 ? true : undefined,
      "nodes free again",
    );
    const costs = (await (
      await fetch(`${url}/v1/clusters/${cluster.id}/costs`, {
        headers: { authorization: `Bearer ${consumerKey}` },
      })
    ).json()) as Record<string, string>;
    assert.equal(costs.rental, "0.080000");
    assert.equal(
      costs.refunded,
      "0.080000",
      "nothing was served (under a minute), so all rental comes back",
    );
  });

  it("refuses impossible or unpaid requests with typed errors and reserves nothing", async () => {
    const base = { kind: "batch" as const, nodes: 1, hours: 1, gpuModel: "cpu", command: ["true"] };
    const refusal = async (body: Record<string, unknown>) => {
      try {
        await consumer.deployCluster(body as never);
      } catch (error) {
        assert.ok(error instanceof TandemApiError);
        return [error.status, error.code];
      }
      throw new Error("expected a refusal");
    };
    assert.deepEqual(await refusal({ ...base, nodes: 0 }), [400, "VALIDATION_FAILED"]);
    assert.deepEqual(await refusal({ ...base, hours: 10_000 }), [400, "VALIDATION_FAILED"]);
    assert.deepEqual(await refusal({ ...base, gpuModel: "rtx-9999" }), [400, "UNKNOWN_GPU_MODEL"]);
    assert.deepEqual(await refusal({ ...base, kind: "slurm" }), [400, "VALIDATION_FAILED"]);
    assert.deepEqual(await refusal({ ...base, maxPricePerHour: "-1" }), [400, "INVALID_AMOUNT"]);
    assert.deepEqual(await refusal({ ...base, command: ["x".repeat(300_000)] }), [
      413,
      "PAYLOAD_TOO_LARGE",
    ]);
    assert.deepEqual(await refusal({ ...base, kind: "container" }), [400, "VALIDATION_FAILED"]);
    assert.deepEqual(await refusal({ ...base, image: "localhost/x:1" }), [
      400,
      "VALIDATION_FAILED",
    ]);
    assert.deepEqual(await refusal({ ...base, nodes: 5 }), [409, "NO_CAPACITY"]);
    assert.deepEqual(await refusal({ ...base, hours: 720, nodes: 4 }), [402, "INSUFFICIENT_FUNDS"]);
    assert.equal((await anonymous.networkStats()).nodes.byStatus.available, 4);
  });
});
