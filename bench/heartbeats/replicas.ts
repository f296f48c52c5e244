/**
 * bench/heartbeats/replicas.ts (issue 19): N coordinator replicas (default 3) on one private
 * PostgreSQL, each in a process of its own (replica.ts), holding N simulated workers between them
 * (worker i on replica i mod N; default 10,000 at 2 Hz: 20,000 heartbeats/s offered in total).
 * Each replica measures its own event loop and heartbeats over the same window; the database's
 * commits and row writes come from `pg_stat_database` over it.
 *
 *   node --import tsx bench/heartbeats/replicas.ts [--replicas 3] [--workers 10000] [--hz 2]
 *     [--window-s 30] [--connecting 30]
 *
 * Needs an open-file limit above the worker count (`ulimit -n`), as bench/heartbeats/run.ts.
 */
import { fork, type ChildProcess } from "node:child_process";
import { generateKeyPairSync } from "node:crypto";
import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { performance } from "node:perf_hooks";
import { setTimeout as sleep } from "node:timers/promises";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { sql, type Kysely } from "kysely";
import { openStore } from "../../src/coordinator/store/database.ts";
import type { Database } from "../../src/coordinator/store/schema.ts";
import { createDatabase, startPostgres } from "../../test/support/postgres.ts";
import { seedFleet } from "../support/fleet.ts";
import { nextMessage } from "../support/ipc.ts";
import { machine, openFileLimit, progress, round2 } from "../support/stats.ts";
import type { WorkerIdentity } from "./workers.ts";

const { values: args } = parseArgs({
  options: {
    replicas: { type: "string", default: "3" },
    workers: { type: "string", default: "10000" },
    hz: { type: "string", default: "2" },
    "window-s": { type: "string", default: "30" },
    "settle-s": { type: "string", default: "5" },
    /** Workers connecting at once: the replicas authenticate more slowly than one on SQLite. */
    connecting: { type: "string", default: "30" },
  },
});
const replicaCount = Number(args.replicas);
const workerCount = Number(args.workers);
const hz = Number(args.hz);
const windowS = Number(args["window-s"]);
const fdLimit = openFileLimit();
if (fdLimit < workerCount + 500)
  throw new Error(`open-file limit ${fdLimit} is too low: ulimit -n ${workerCount + 1000}`);

interface ReplicaWindow {
  heartbeatsPerS: number;
  eventLoopDelayMs: { p50: number; p99: number; max: number };
  cores: number;
  rssMaxMiB: number;
  connected: number;
  leader: boolean;
}

const machineAtStart = machine();
const home = await mkdtemp(join(tmpdir(), "tandem-bench-heartbeat-replicas-"));
const server = await startPostgres();
const children: ChildProcess[] = [];
try {
  const databaseUrl = await createDatabase(server.url, "tandem_bench_heartbeats");
  const store = await openStore({ kind: "postgres", url: databaseUrl });
  const identities = await seed(store.db);
  const identitiesFile = join(home, "workers.json");
  await writeFile(identitiesFile, JSON.stringify(identities));

  const urls: string[] = [];
  for (let i = 0; i < replicaCount; i++) {
    const replicaHome = join(home, `replica-${i}`);
    await mkdir(replicaHome);
    const replica = fork(
      fileURLToPath(new URL("./replica.ts", import.meta.url)),
      [replicaHome, databaseUrl, String(hz)],
      { execArgv: ["--import", "tsx"] },
    );
    children.push(replica);
    urls.push((await nextMessage<{ url: string }>(replica, "ready")).url);
  }
  progress(`${replicaCount} replicas listening`);
  const workers = fork(
    fileURLToPath(new URL("./workers.ts", import.meta.url)),
    [urls.join(","), identitiesFile, args.connecting],
    { execArgv: ["--import", "tsx"] },
  );
  children.push(workers);
  const connected = await nextMessage<{
    workers: number;
    failed: number;
    firstFailure: string | null;
    connectS: number;
  }>(workers, "connected");
  progress(
    `${connected.workers} workers connected in ${round2(connected.connectS)} s (${connected.failed} failed: ${connected.firstFailure})`,
  );
  await sleep(Number(args["settle-s"]) * 1000);

  progress(`measuring for ${windowS} s`);
  const replicas = children.slice(0, replicaCount);
  const before = await databaseWrites(store.db);
  const startMs = performance.now();
  for (const replica of replicas) replica.send("window-start");
  await sleep(windowS * 1000);
  const windows = await Promise.all(
    replicas.map((replica) => {
      const answer = nextMessage<ReplicaWindow>(replica, "window");
      replica.send("window-end");
      return answer;
    }),
  );
  const wallS = (performance.now() - startMs) / 1000;
  await sleep(1000); // the server's statistics trail its commits by up to a second
  const after = await databaseWrites(store.db);
  workers.send("stop");
  const offered = await nextMessage<{ sentPerS: number; cores: number }>(workers, "report");
  await store.close();

  console.log(
    JSON.stringify(
      {
        machine: { ...machineAtStart, loadAvg1mAtEnd: machine().loadAvg1m },
        conditions: {
          replicas: replicaCount,
          workers: workerCount,
          hz,
          offeredPerS: workerCount * hz,
          windowS,
          database: "postgres",
        },
        heartbeatsPerS: windows.reduce((sum, w) => sum + w.heartbeatsPerS, 0),
        workersSentPerS: Math.round(offered.sentPerS),
        replicas: windows,
        database: {
          commitsPerS: Math.round((after.commits - before.commits) / wallS),
          rowWritesPerS: Math.round((after.rowWrites - before.rowWrites) / wallS),
        },
      },
      null,
      2,
    ),
  );
} finally {
  for (const child of children) child.kill("SIGKILL");
  await server.stop();
  await rm(home, { recursive: true, force: true });
}

/** Verified devices, offline until their simulated workers connect. */
async function seed(db: Kysely<Database>): Promise<WorkerIdentity[]> {
  const keys = Array.from({ length: workerCount }, () => {
    const { publicKey, privateKey } = generateKeyPairSync("ed25519");
    return {
      publicKey: publicKey.export({ format: "jwk" }).x!,
      privateKey: privateKey.export({ format: "der", type: "pkcs8" }).toString("base64"),
    };
  });
  const nodes = await seedFleet(db, {
    count: workerCount,
    nowMs: Date.now(),
    publicKeyOf: (i) => keys[i]!.publicKey,
    allOffline: true,
  });
  return nodes.map((n, i) => ({
    deviceId: n.deviceId,
    privateKey: keys[i]!.privateKey,
    gpuCount: n.gpuCount,
  }));
}

/** Commits and rows inserted, updated or deleted in this database so far (server statistics). */
async function databaseWrites(db: Kysely<Database>) {
  const row = (
    await sql<{ commits: string; row_writes: string }>`
      select xact_commit::text as commits,
             (tup_inserted + tup_updated + tup_deleted)::text as row_writes
        from pg_stat_database where datname = current_database()`.execute(db)
  ).rows[0]!;
  return { commits: Number(row.commits), rowWrites: Number(row.row_writes) };
}
