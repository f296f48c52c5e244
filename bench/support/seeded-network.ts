/**
 * A seeded network for the read-side benchmarks: a store (SQLite file, or a private PostgreSQL
 * server) holding `count` nodes from `fleet.ts`, and a coordinator process over it whose failure
 * detector and uptime refresh leave the seeded figures alone during a run.
 */
import { join } from "node:path";
import { sql } from "kysely";
import { openStore, type Store, type StoreLocation } from "../../src/coordinator/store/database.ts";
import { startPostgres, type PostgresServer } from "../../test/support/postgres.ts";
import { startCoordinatorProcess, type CoordinatorProcess } from "./coordinator-process.ts";
import { seedFleet } from "./fleet.ts";

export interface SeededNetwork {
  location: StoreLocation;
  /** The seeded store, open; close it before the coordinator starts if this process is done. */
  store: Store;
  /** The coordinator in a child process over the same database. */
  startCoordinator(options?: { cpuProfileDir?: string | undefined }): Promise<CoordinatorProcess>;
  /** Stops the coordinator and the PostgreSQL server, if started. */
  stop(): Promise<void>;
}

export async function seedNetwork(db: string, home: string, count: number): Promise<SeededNetwork> {
  let postgres: PostgresServer | undefined;
  let coordinator: CoordinatorProcess | undefined;
  let location: StoreLocation;
  if (db === "postgres") {
    postgres = await startPostgres();
    location = { kind: "postgres", url: postgres.url };
  } else {
    location = { kind: "sqlite", path: join(home, "coordinator.db") };
  }
  const store = await openStore(location);
  await seedFleet(store.db, { count, nowMs: Date.now() });
  // Autovacuum would vacuum and analyze a freshly loaded table within a minute or so; do it now
  // (the visibility map lets the stats query scan its covering index alone).
  if (location.kind === "postgres") await sql`vacuum analyze nodes`.execute(store.db);
  const where = location;
  return {
    location,
    store,
    async startCoordinator(options = {}) {
      coordinator = await startCoordinatorProcess(
        {
          home,
          port: 0,
          logLevel: "warn",
          rateLimitPerMinute: 1_000_000_000,
          ...(where.kind === "postgres" ? { databaseUrl: where.url } : { sqlitePath: where.path }),
          // The seeded online nodes have no worker behind them: a 100-minute detection deadline
          // keeps them online, and an hourly uptime refresh keeps the seeded uptime figures.
          heartbeatIntervalMs: 60_000,
          missedHeartbeats: 100,
          uptimeRefreshMs: 3_600_000,
        },
        options,
      );
      return coordinator;
    },
    async stop() {
      await coordinator?.stop();
      await postgres?.stop();
    },
  };
}
