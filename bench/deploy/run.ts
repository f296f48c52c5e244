// bench/deploy: API call → all 16 ranks running, on loopback, nothing to download (issue 3:
// p50 ≤ 300 ms, p99 ≤ 1 s). One process holds the coordinator (SQLite) and 16 real workers, each
// starting its rank in a real bubblewrap sandbox; "running" means every rank's processes exist.
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { TandemClient } from "../../src/client/client.ts";
import { startCoordinator } from "../../src/coordinator/main.ts";
import { startWorker } from "../../src/worker/main.ts";

const NODES = Number(process.env.NODES ?? 16);
const RUNS = Number(process.env.RUNS ?? 30);

const home = await mkdtemp(join(tmpdir(), "tandem-bench-deploy-"));
const coordinator = await startCoordinator({
  home,
  port: 0,
  logLevel: "warn",
  faucet: true,
  rateLimitPerMinute: 1_000_000,
});
const anonymous = new TandemClient({ baseUrl: coordinator.url });
const account = await anonymous.createAccount({ roles: ["consumer", "supplier"] });
const client = new TandemClient({ baseUrl: coordinator.url, apiKey: account.apiKey });
const deposit = await fetch(`${coordinator.url}/v1/wallet/deposits`, {
  method: "POST",
  headers: {
    "content-type": "application/json",
    authorization: `Bearer ${account.apiKey}`,
    "idempotency-key": "bench",
  },
  body: JSON.stringify({ currency: "USDC", amount: "1000" }),
});
if (deposit.status !== 201) throw new Error(`deposit failed: ${deposit.status}`);

const workers = [];
for (let i = 0; i < NODES; i++) {
  workers.push(
    await startWorker(
      {
        home: join(home, `w${i}`),
        coordinatorUrl: coordinator.url,
        apiKey: account.apiKey,
        region: "eu-west",
        zone: `eu-west-${"abc"[i % 3]}`,
      },
      { log: () => {} },
    ),
  );
}
const waitFor = async (check: () => Promise<boolean>) => {
  while (!(await check())) await new Promise((resolve) => setTimeout(resolve, 2));
};
await waitFor(async () => (await anonymous.networkStats()).nodes.byStatus.available === NODES);

const latencies: number[] = [];
for (let run = 0; run < RUNS; run++) {
  const started = performance.now();
  const cluster = await client.deployCluster({
    kind: "batch",
    nodes: NODES,
    hours: 1,
    gpuModel: "cpu",
    command: ["sleep", "60"],
  });
  await waitFor(async () => {
    const row = await coordinator.store.db
      .selectFrom("clusters")
      .select("status")
      .where("id", "=", cluster.id)
      .executeTakeFirstOrThrow();
    return row.status === "running";
  });
  latencies.push(performance.now() - started);
  await client.terminateCluster(cluster.id);
  await waitFor(async () => (await anonymous.networkStats()).nodes.byStatus.available === NODES);
}

latencies.sort((a, b) => a - b);
const q = (p: number) =>
  Math.round(latencies[Math.min(latencies.length - 1, Math.floor(p * latencies.length))]!);
console.log(
  JSON.stringify({
    nodes: NODES,
    runs: RUNS,
    p50Ms: q(0.5),
    p90Ms: q(0.9),
    p99Ms: q(0.99),
    maxMs: q(1),
  }),
);

await Promise.all(workers.map((w) => w.stop()));
await coordinator.close();
await rm(home, { recursive: true, force: true });
