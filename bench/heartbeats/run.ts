/**
 * bench/heartbeats: one coordinator on SQLite holding N simulated workers (default 10,000) that
 * each beat at 2 Hz over a real WebSocket on loopback (20,000 heartbeats/s offered). The devices
 * are seeded straight into the store; the workers run in a child process (workers.ts); everything
 * reported is measured inside the coordinator's own process over a steady window.
 *
 *   node --import tsx bench/heartbeats/run.ts [--workers 10000] [--hz 2] [--window-s 30]
 *
 * Needs an open-file limit above the worker count in this shell (`ulimit -n`): each connection is
 * one fd in the coordinator and one in the child.
 */
import { fork, type ChildProcess } from "node:child_process";
import { generateKeyPairSync } from "node:crypto";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { monitorEventLoopDelay, performance, PerformanceObserver } from "node:perf_hooks";
import { setTimeout as sleep } from "node:timers/promises";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { sql } from "kysely";
import { startCoordinator, type Coordinator } from "../../src/coordinator/main.ts";
import { openStore } from "../../src/coordinator/store/database.ts";
import { seedFleet } from "../support/fleet.ts";
import { nextMessage } from "../support/ipc.ts";
import { machine, openFileLimit, progress, round2 } from "../support/stats.ts";
import type { WorkerIdentity } from "./workers.ts";

const { values: args } = parseArgs({
  options: {
    workers: { type: "string", default: "10000" },
    hz: { type: "string", default: "2" },
    "window-s": { type: "string", default: "30" },
    "settle-s": { type: "string", default: "5" },
  },
});
const DELAY_RESOLUTION_MS = 10;
const workerCount = Number(args.workers);
const hz = Number(args.hz);
const windowS = Number(args["window-s"]);

const fdLimit = openFileLimit();
if (fdLimit < workerCount + 500) {
  throw new Error(
    `open-file limit ${fdLimit} is too low for ${workerCount} workers: ulimit -n ${workerCount + 1000}`,
  );
}

const machineAtStart = machine();
const home = await mkdtemp(join(tmpdir(), "tandem-bench-heartbeats-"));
let coordinator: Coordinator | undefined;
let child: ChildProcess | undefined;
try {
  const seedStartMs = performance.now();
  const keys = Array.from({ length: workerCount }, () => {
    const { publicKey, privateKey } = generateKeyPairSync("ed25519");
    return {
      publicKey: publicKey.export({ format: "jwk" }).x!,
      privateKey: privateKey.export({ format: "der", type: "pkcs8" }).toString("base64"),
    };
  });
  const dbPath = join(home, "coordinator.db");
  const store = await openStore({ kind: "sqlite", path: dbPath });
  const nodes = await seedFleet(store.db, {
    count: workerCount,
    nowMs: Date.now(),
    publicKeyOf: (i) => keys[i]!.publicKey,
    allOffline: true,
  });
  await store.close();
  const identities: WorkerIdentity[] = nodes.map((n, i) => ({
    deviceId: n.deviceId,
    privateKey: keys[i]!.privateKey,
    gpuCount: n.gpuCount,
  }));
  const identitiesFile = join(home, "workers.json");
  await writeFile(identitiesFile, JSON.stringify(identities));
  const seedS = (performance.now() - seedStartMs) / 1000;
  progress(`seeded ${workerCount} devices in ${round2(seedS)} s`);

  coordinator = await startCoordinator({
    home,
    port: 0,
    logLevel: "warn",
    rateLimitPerMinute: 1_000_000_000,
    // Workers beat at the interval the coordinator asks for; 12 missed beats keep the failure
    // detector's deadline at the production default's 6 s (2 s × 3).
    heartbeatIntervalMs: Math.round(1000 / hz),
    missedHeartbeats: Math.round(6 * hz),
  });
  const c = coordinator;

  child = fork(fileURLToPath(new URL("./workers.ts", import.meta.url)), [c.url, identitiesFile], {
    execArgv: ["--import", "tsx"],
  });
  const watch = monitorEventLoopDelay({ resolution: DELAY_RESOLUTION_MS });
  watch.enable();
  const watcher = setInterval(() => {
    progress(
      `coordinator: ${c.gateway.connectedWorkers} sessions, event-loop delay max ${delayMs(watch.max)} ms`,
    );
    watch.reset();
  }, 5000);
  const connected = await nextMessage<{
    workers: number;
    failed: number;
    firstFailure: string | null;
    connectS: number;
  }>(child, "connected");
  progress(
    `${connected.workers} workers connected in ${round2(connected.connectS)} s (${connected.failed} failed)`,
  );
  await sleep(Number(args["settle-s"]) * 1000);
  progress(`measuring for ${windowS} s`);

  const readTotals = async () => ({
    heartbeats: await heartbeatsTotal(c),
    dbChanges: (await sql<{ n: number }>`select total_changes() as n`.execute(c.store.db)).rows[0]!
      .n,
    historyRows: Number(
      (
        await c.store.db
          .selectFrom("node_history")
          .select((eb) => eb.fn.countAll().as("n"))
          .executeTakeFirstOrThrow()
      ).n,
    ),
  });
  const delay = monitorEventLoopDelay({ resolution: DELAY_RESOLUTION_MS });
  let rssMaxBytes = 0;
  let connectedMin = Infinity;
  const sampler = setInterval(() => {
    rssMaxBytes = Math.max(rssMaxBytes, process.memoryUsage.rss());
    connectedMin = Math.min(connectedMin, c.gateway.connectedWorkers);
  }, 250);
  const gcPausesMs: number[] = [];
  const gc = new PerformanceObserver((list) =>
    gcPausesMs.push(...list.getEntries().map((e) => e.duration)),
  );
  gc.observe({ entryTypes: ["gc"] });
  const before = await readTotals();
  const cpuBefore = process.cpuUsage();
  const startMs = performance.now();
  delay.enable();
  await sleep(windowS * 1000);
  delay.disable();
  const wallS = (performance.now() - startMs) / 1000;
  const cpu = process.cpuUsage(cpuBefore);
  clearInterval(sampler);
  gc.disconnect();
  const after = await readTotals();

  clearInterval(watcher);
  watch.disable();
  child.send("stop");
  const workers = await nextMessage<{ sentPerS: number; cores: number; unexpectedCloses: number }>(
    child,
    "report",
  );

  const result = {
    machine: { ...machineAtStart, loadAvg1mAtEnd: machine().loadAvg1m },
    conditions: {
      workers: workerCount,
      hz,
      offeredPerS: workerCount * hz,
      detectionDeadlineS: 6,
      windowS,
      database: "sqlite",
      fdLimit,
    },
    setup: {
      seedS: round2(seedS),
      connected: connected.workers,
      connectFailures: connected.failed,
      firstFailure: connected.firstFailure,
      connectS: round2(connected.connectS),
    },
    coordinator: {
      heartbeatsPerS: Math.round((after.heartbeats - before.heartbeats) / wallS),
      eventLoopDelayMs: {
        p50: delayMs(delay.percentile(50)),
        p99: delayMs(delay.percentile(99)),
        max: delayMs(delay.max),
      },
      gcPausesMs: {
        count: gcPausesMs.length,
        total: round2(gcPausesMs.reduce((a, b) => a + b, 0)),
        max: round2(Math.max(0, ...gcPausesMs)),
      },
      rssMaxMiB: Math.round(rssMaxBytes / 1_048_576),
      heapUsedMiB: Math.round(process.memoryUsage().heapUsed / 1_048_576),
      cores: round2((cpu.user + cpu.system) / 1e6 / wallS),
      connectedMin,
      dbChangesInWindow: after.dbChanges - before.dbChanges,
      historyRowsInWindow: after.historyRows - before.historyRows,
    },
    workersProcess: {
      sentPerS: Math.round(workers.sentPerS),
      cores: round2(workers.cores),
      unexpectedCloses: workers.unexpectedCloses,
    },
  };
  console.log(JSON.stringify(result, null, 2));
} finally {
  child?.kill();
  await coordinator?.close();
  await rm(home, { recursive: true, force: true });
}

async function heartbeatsTotal(c: Coordinator): Promise<number> {
  const response = await c.app.inject({ method: "GET", url: "/metrics" });
  const match = /^tandem_heartbeats_total (\d+)/m.exec(response.body);
  if (match === null) throw new Error("no tandem_heartbeats_total in /metrics");
  return Number(match[1]);
}

/** The histogram records whole gaps between its timer's ticks: the delay is the excess over the period. */
function delayMs(nanoseconds: number): number {
  return round2(Math.max(0, nanoseconds / 1e6 - DELAY_RESOLUTION_MS));
}
