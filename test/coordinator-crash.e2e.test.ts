// Crash safety (issue 4, item 7; DESIGN.md §8.1: "a kill -9 at any instant loses nothing and
// doubles nothing"). A real coordinator and 4 real workers; a driver deposits, deploys, extends,
// terminates and withdraws through the API with idempotency keys (support/crash-driver.ts) while
// the coordinator is SIGKILLed — soon after a start, a few ms into one of those requests, or
// anywhere in its per-second tick, which settles, expires and moves leases — and started again on
// the same port: 50 times on SQLite, 10 on PostgreSQL (a restart costs 2-3 s of node start-up;
// 60 kills keep the file within 5 minutes on the 2-core CI machine). Then every cluster is ended
// and the money checked: every transaction balanced, per currency Σ balances = deposits −
// withdrawals − burned, every deposit and withdrawal the driver was answered counted once, no
// lease paid twice, no refund twice, each deploy key one cluster, no error logged by any
// incarnation.
import assert from "node:assert/strict";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { it, type TestContext } from "node:test";
import { TandemClient } from "../src/client/client.ts";
import { openStore } from "../src/coordinator/store/database.ts";
import { money, sub } from "../src/core/money.ts";
import { probeBwrap } from "../src/worker/runtime/select-runtime.ts";
import { freshPostgresDatabase } from "./support/coordinator.ts";
import {
  clusterProblems,
  keyProblems,
  leaseProblems,
  ledgerCounts,
} from "./support/crash-audit.ts";
import { CrashDriver, type Operation } from "./support/crash-driver.ts";
import { postgresForTests } from "./support/postgres.ts";
import { eventually, spawnTandem } from "./support/processes.ts";
import { RestartableCoordinator } from "./support/restartable-coordinator.ts";
import { enrollmentEnv } from "./support/workers.ts";

const WORKERS = 4;
const HEARTBEAT_MS = 500;
/**
 * Dead after 16 silent intervals (8 s), fenced after 15: a restart (≈ 3 s here) plus a reconnect's
 * jittered backoff mostly fits, so leases live across kills and get settled per minute; after two
 * quick kills in a row a worker fences, goes offline and its lease fails over, exact too.
 */
const MISSED = 16;

const noSandbox = await probeBwrap();
if (noSandbox !== undefined)
  process.stderr.write(`skipping the coordinator crash tests: jobs cannot sandbox: ${noSandbox}\n`);

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

it(
  "loses and doubles nothing across 50 coordinator kills on SQLite",
  {
    skip: noSandbox ?? false,
    timeout: 600_000,
  },
  (t) => crashRun(t, { kills: 50, databaseUrl: undefined }),
);

it(
  "loses and doubles nothing across 10 coordinator kills on PostgreSQL",
  {
    skip: noSandbox ?? false,
    timeout: 600_000,
  },
  async (t) => {
    // Started here, not at load: an idle server is stopped by any `.ci/run` sweep meanwhile.
    const pg = await postgresForTests();
    if (pg.skip) return t.skip(pg.reason);
    t.after(() => pg.stop());
    await crashRun(t, { kills: 10, databaseUrl: await freshPostgresDatabase(pg.url) });
  },
);

async function crashRun(
  t: TestContext,
  options: { kills: number; databaseUrl: string | undefined },
): Promise<void> {
  const startedAtMs = Date.now();
  const home = await mkdtemp(join(tmpdir(), "tandem-crash-"));
  t.after(() => rm(home, { recursive: true, force: true }));
  const coordinator = await RestartableCoordinator.start({
    home: join(home, "c"),
    databaseUrl: options.databaseUrl,
    flags: [
      ...["--log-level", "warn", "--heartbeat-interval-ms", String(HEARTBEAT_MS)],
      ...["--missed-heartbeats", String(MISSED)],
    ],
  });
  t.after(() => coordinator.stop());

  const anonymous = new TandemClient({ baseUrl: coordinator.url });
  const party = async (roles: Array<"consumer" | "supplier">) => {
    const { accountId, apiKey } = await anonymous.createAccount({ roles });
    return { accountId, apiKey, client: new TandemClient({ baseUrl: coordinator.url, apiKey }) };
  };
  const adminClient = new TandemClient({
    baseUrl: coordinator.url,
    apiKey: (await readFile(coordinator.adminKeyFile, "utf8")).trim(),
  });
  const admin = { client: adminClient, accountId: (await adminClient.me()).accountId };
  const consumer = await party(["consumer"]);
  const supplier = await party(["supplier"]);
  for (const [i, zone] of ["a", "b", "c", "a"].entries()) {
    const args = [
      "--region",
      "eu-west",
      "--zone",
      `eu-west-${zone}`,
      "--home",
      join(home, `w${i}`),
    ];
    const worker = spawnTandem(
      ["worker", "start", ...args],
      await enrollmentEnv(coordinator.url, supplier.apiKey),
    );
    t.after(() => worker.kill("SIGTERM"));
  }
  await eventually(
    async () =>
      (await anonymous.networkStats()).nodes.byStatus.available === WORKERS ? true : undefined,
    `${WORKERS} verified workers`,
    120_000,
  );

  const driver = new CrashDriver(coordinator, { admin, consumer, supplier });
  await driver.operations.deposit();
  const driving = driver.run();
  driving.catch(() => undefined); // awaited below, once the killer is done
  /** What was in flight at each kill ("tick": no request). */
  const killedDuring = new Map<Operation | "tick", number>();
  // Kills by turns: a few ms into a deploy, into a termination, soon after a start (workers
  // reconnecting, the first ticks catching up), and with every worker back anywhere in the
  // scheduler's per-second tick (settling, expiring, moving leases).
  let killerError: Error | undefined;
  try {
    while (coordinator.kills < options.kills && !driver.stopped) {
      const turn = (["deploy", "terminate", "start", "tick"] as const)[coordinator.kills % 4]!;
      let side: Promise<void> | undefined;
      if (turn === "deploy" || turn === "terminate") {
        side = driver.operations[turn](true);
        side.catch(() => undefined); // awaited after the restart
        // Somewhere in the round trip such requests have taken so far.
        if ((await driver.nextRequest(turn, 3_000)) !== undefined)
          await sleep(Math.random() * (driver.medianLatencyMs(turn) ?? 20));
      } else if (turn === "start") {
        await sleep(100 + Math.random() * 1000);
      } else {
        await workersBack(anonymous, 3_000);
        await sleep(300 + Math.random() * 2000);
      }
      if (driver.stopped) break;
      const busy = [...driver.inFlight].filter(([, n]) => n > 0).map(([operation]) => operation);
      const during = busy.find((operation) => operation === turn) ?? busy[0] ?? "tick";
      killedDuring.set(during, (killedDuring.get(during) ?? 0) + 1);
      await coordinator.killAndRestart();
      await side;
    }
  } catch (error) {
    killerError = error instanceof Error ? error : new Error(String(error));
  }
  driver.stop();
  await driving.catch((error: unknown) => {
    const logged = coordinator.logged(/"level":(50|60)/).slice(-5);
    throw new Error(`the driver failed; coordinator errors:\n${logged.join("\n")}`, {
      cause: error,
    });
  });
  if (killerError !== undefined) throw killerError;

  const ended = await driver.endAll();
  const audit = await driver.read(() => admin.client.ledgerAudit());
  assert.equal(audit.unbalancedTransactions, 0, JSON.stringify(audit));
  assert.equal(audit.negativeBalances, 0, JSON.stringify(audit));
  assert.equal(audit.cacheMismatches, 0, JSON.stringify(audit));
  for (const c of audit.currencies) assert.equal(c.conserved, true, JSON.stringify(c));
  assert.equal(audit.ok, true);
  // Nothing lost, nothing doubled: each deposit and withdrawal the driver was answered, once.
  const usdc = audit.currencies.find((c) => c.currency === "USDC")!;
  assert.equal(money(usdc.deposits), driver.deposited);
  assert.equal(money(usdc.withdrawals), driver.withdrawn);
  for (const id of driver.clusters) {
    const costs = await driver.read(() => consumer.client.clusterCosts(id));
    const [rental, served, refunded, escrow] = [
      money(costs.rental),
      money(costs.served),
      money(costs.refunded),
      money(costs.escrow),
    ];
    const context = `${id}: ${JSON.stringify(costs)}`;
    assert.equal(escrow, 0n, context);
    assert.equal(served + refunded + escrow, rental, context);
    assert.ok(refunded <= sub(rental, served), `refunded twice: ${context}`);
  }
  assert.deepEqual(driver.serverErrors, []);
  assert.deepEqual(coordinator.logged(/"level":(50|60)/), []);

  await coordinator.stop();
  const store = await openStore(
    options.databaseUrl === undefined
      ? { kind: "sqlite", path: join(home, "c", "coordinator.db") }
      : { kind: "postgres", url: options.databaseUrl },
  );
  let ledger: Record<string, number>;
  try {
    const stored = await store.db.selectFrom("clusters").select("id").execute();
    assert.deepEqual(stored.map((c) => c.id).sort(), [...driver.clusters].sort());
    assert.deepEqual(await leaseProblems(store.db), []);
    assert.deepEqual(await clusterProblems(store.db), []);
    assert.deepEqual(await keyProblems(store.db, driver), []);
    ledger = await ledgerCounts(store.db);
  } finally {
    await store.close();
  }
  assert.ok(coordinator.kills >= options.kills);
  // A quarter of the kills aim inside a deploy and a quarter inside a termination; 10 kills are
  // too few to require a hit, 50 are not.
  if (options.kills >= 50)
    for (const operation of ["deploy", "terminate"] as const)
      assert.ok((killedDuring.get(operation) ?? 0) > 0, `no kill landed inside a ${operation}`);
  const medians = [...driver.latenciesMs.keys()].map((o) => `${o} ${driver.medianLatencyMs(o)}`);
  t.diagnostic(
    `${coordinator.kills} kills in ${Math.round((Date.now() - startedAtMs) / 1000)} s ` +
      `(restart ${coordinator.medianRestartMs()} ms median), during ` +
      `${JSON.stringify(Object.fromEntries(killedDuring))}; ${driver.resent} requests resent; ` +
      `${driver.clusters.size} clusters from ${driver.deploys.size} deploys, at the end ` +
      `${JSON.stringify(ended.statuses)}; short jobs whose exit never arrived: ` +
      `${ended.exitsLost}; extensions ${JSON.stringify(driver.extensions)}; ledger ` +
      `${JSON.stringify(ledger)}; median round trips (ms): ${medians.join(", ")}`,
  );
}

/** Waits (at most `timeoutMs`) until every worker is connected again after a restart. */
async function workersBack(client: TandemClient, timeoutMs: number): Promise<void> {
  const deadlineMs = Date.now() + timeoutMs;
  while (Date.now() < deadlineMs) {
    const health = await client.health().catch(() => undefined);
    if (health !== undefined && health.connectedWorkers >= WORKERS) return;
    await sleep(100);
  }
}
