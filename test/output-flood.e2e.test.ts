// Issue 18, output flood: a job writes 161.6 MB to stdout as fast as it can, on a real coordinator
// (SQLite and PostgreSQL) with real worker processes. Before, the coordinator stalled on the
// flood, every worker running the rank fenced itself, the rank failed over across the nodes and
// honest suppliers were slashed. Now the worker sends what its caps allow (rank-output.ts), the
// coordinator stores it off the message path (log-writer.ts), and nothing else notices.
import assert from "node:assert/strict";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { it } from "node:test";
import { forEachDatabase, type TestCoordinator } from "./support/coordinator.ts";
import { eventually, spawnTandem, type TandemProcess } from "./support/processes.ts";
import { enrollmentEnv, fund } from "./support/workers.ts";

const WORKERS = 2;
const LINE = "0123456789".repeat(10);
/** 1,600,000 lines of 101 bytes: 161.6 MB. */
const FLOOD_LINES = 1_600_000;
const FLOOD_BYTES = FLOOD_LINES * (LINE.length + 1);
/** The worker's default total per rank (worker/config.ts), bytes; a line costs its text + 33. */
const RANK_CAP_BYTES = 64 * 1024 * 1024;

async function startWorkers(
  t: { after(fn: () => unknown): void },
  net: TestCoordinator,
  extra: string[],
) {
  const supplier = await net.signUp(["supplier"]);
  const home = await mkdtemp(join(tmpdir(), "tandem-flood-"));
  const workers: TandemProcess[] = [];
  t.after(async () => {
    await Promise.all(workers.map((w) => w.kill("SIGTERM")));
    await rm(home, { recursive: true, force: true });
  });
  for (let i = 0; i < WORKERS; i++) {
    const worker = spawnTandem(
      [
        "worker",
        "start",
        "--region",
        "eu-west",
        "--zone",
        `eu-west-${"ab"[i]}`,
        "--json",
        ...extra,
      ],
      { ...(await enrollmentEnv(net.url, supplier.apiKey)), TANDEM_HOME: join(home, `w${i}`) },
    );
    workers.push(worker);
    await worker.line(/^\{/, 90_000);
  }
  await eventually(
    async () =>
      (await net.client().networkStats()).nodes.byStatus.available === WORKERS ? true : undefined,
    `${WORKERS} available workers`,
    120_000,
  );
  return workers;
}

forEachDatabase("output flood", (db) => {
  it(
    "a job flooding stdout completes: no fence, no failover, no slash; its log is capped and says so",
    { timeout: 300_000 },
    async (t) => {
      const net = await db.startCoordinator();
      t.after(() => net.close());
      // SQLite: the default caps, so the rate cuts the flood; PostgreSQL: a 3 MiB total (below
      // the 4 MiB burst), so the total does.
      const capBytes = db.kind === "sqlite" ? RANK_CAP_BYTES : 3 * 1024 * 1024;
      const workers = await startWorkers(
        t,
        net,
        db.kind === "sqlite" ? [] : ["--job-output-max", "3"],
      );
      const consumer = await net.signUp(["consumer"]);
      await fund(net, consumer.accountId, "10");
      const reputations = (await net.client().listNodes({})).items.map(
        (n) => [n.id, n.reputation] as const,
      );

      const deployed = await consumer.client.deployCluster({
        kind: "batch",
        nodes: 1,
        shadow: 1,
        hours: 1,
        gpuModel: "cpu",
        command: ["sh", "-c", `yes ${LINE} | head -n ${FLOOD_LINES}; echo flood-done`],
      });
      // How long /health takes while the flood runs (reported, not asserted: tests assert outcomes).
      let slowestHealthMs = 0;
      const done = await eventually(
        async () => {
          const started = performance.now();
          await net.client().health();
          slowestHealthMs = Math.max(slowestHealthMs, performance.now() - started);
          const view = await consumer.client.getCluster(deployed.id);
          return ["completed", "failed", "terminated", "expired"].includes(view.status)
            ? view
            : undefined;
        },
        "the cluster to end",
        240_000,
      );
      t.diagnostic(`slowest /health during the flood: ${slowestHealthMs.toFixed(1)} ms`);
      const context = JSON.stringify(done.events);
      assert.equal(done.status, "completed", context);
      for (const type of ["failover", "takeover", "slashed", "node-lost", "standby-lost"])
        assert.ok(!done.events.some((e) => e.type === type), `${type}: ${context}`);
      assert.equal((await consumer.client.clusterCosts(deployed.id)).slashCompensation, "0.000000");
      for (const [nodeId, before] of reputations) {
        const after = (await net.client().getNode(nodeId)).reputation;
        assert.ok(after >= before, `${nodeId}: reputation ${before} -> ${after}`);
      }
      for (const worker of workers)
        assert.ok(!worker.stderr.some((l) => l.includes("fenced")), worker.stderr.join("\n"));

      // The stored log: the flood's lines up to the caps, then the worker's note, last.
      const lines: string[] = [];
      for (let after = 0; ;) {
        const { items } = await consumer.client.clusterLogs(deployed.id, { limit: 5000, after });
        if (items.length === 0) break;
        lines.push(...items.map((l) => l.text));
        after = items.at(-1)!.seq;
      }
      const text = lines.filter((l) => !l.startsWith("[tandem] output truncated:"));
      assert.ok(text.length > 0, "some of the job's output");
      assert.deepEqual(
        text.filter((l) => l !== LINE),
        [],
        "only whole lines of the job's own",
      );
      assert.ok(text.length * (LINE.length + 33) <= capBytes, `${text.length} lines`);
      assert.ok(text.length * (LINE.length + 1) < FLOOD_BYTES, "the flood was cut");
      assert.match(
        lines.at(-1) ?? "",
        db.kind === "sqlite"
          ? /^\[tandem\] output truncated: .* dropped over/
          : /^\[tandem\] output truncated: this rank reached its output cap of 3\.0 MiB/,
      );
      t.diagnostic(`stored ${lines.length} lines of ${FLOOD_LINES}`);
    },
  );
});
