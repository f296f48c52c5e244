/**
 * A real coordinator for a test: port 0 on loopback, a fresh temp TANDEM home, a fresh database
 * (a SQLite file in that home, or a new database on this test file's private PostgreSQL server),
 * silent logs. `forEachDatabase` declares a file's cases once and runs them on both databases.
 *
 * ```ts
 * forEachDatabase("accounts", (db) => {
 *   test("sign-up answers a key", async (t) => {
 *     const tc = await db.startCoordinator();
 *     t.after(() => tc.close());
 *     const { client } = await tc.signUp(["consumer"]);
 *     ...
 *   });
 * });
 * ```
 */
import { randomBytes } from "node:crypto";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, test } from "node:test";
import { sql } from "kysely";
import { TandemClient } from "../../src/client/client.ts";
import { SMALL_PROOF_POLICY, type CoordinatorConfigInput } from "../../src/coordinator/config.ts";
import { startCoordinator, type Coordinator } from "../../src/coordinator/main.ts";
import { openStore, type Store } from "../../src/coordinator/store/database.ts";
import type { Database } from "../../src/coordinator/store/schema.ts";
import type { Clock } from "../../src/core/clock.ts";
import type { Role } from "../../src/protocol/accounts.ts";
import { ErrorBody } from "../../src/protocol/errors.ts";
import { createDatabase, postgresForTests, type PostgresForTests } from "./postgres.ts";

export type DatabaseKind = "sqlite" | "postgres";

/** Config a test may override; home, port, database and log level are the helper's. */
export type CoordinatorOverrides = Omit<
  CoordinatorConfigInput,
  "home" | "port" | "host" | "databaseUrl" | "logLevel"
>;

export interface TestCoordinatorOptions {
  database: DatabaseKind;
  /** The PostgreSQL server's admin URL (required for `postgres`): a fresh database is made on it. */
  pgUrl?: string;
  clock?: Clock;
  config?: CoordinatorOverrides;
}

export interface TestCoordinator {
  readonly coordinator: Coordinator;
  readonly url: string;
  readonly home: string;
  readonly database: DatabaseKind;
  /** Its PostgreSQL database's URL; undefined on SQLite. */
  readonly databaseUrl: string | undefined;
  /** The admin key the first start created (also in `<home>/admin.key`). */
  readonly adminKey: string;
  /** A typed client for this coordinator, with `apiKey` or anonymous. */
  client(apiKey?: string): TandemClient;
  /** Creates an account through the API (as admin, so it works with sign-up closed). */
  signUp(roles: Role[]): Promise<{ accountId: string; apiKey: string; client: TandemClient }>;
  /** Stops this coordinator and starts a new one on the same home and database. */
  restart(): Promise<TestCoordinator>;
  /**
   * Starts another coordinator on the same PostgreSQL database, with a home of its own: a replica
   * (DESIGN.md §7). Its config is this one's, with `config` over it.
   */
  replica(config?: CoordinatorOverrides): Promise<TestCoordinator>;
  /** Stops the coordinator and deletes its home. Idempotent. */
  close(): Promise<void>;
}

/** Manual time for tests: moves only when told. */
export class ManualClock implements Clock {
  constructor(private ms: number = Date.UTC(2025, 0, 1)) {}
  now(): number {
    return this.ms;
  }
  advance(ms: number): number {
    this.ms += ms;
    return this.ms;
  }
  set(ms: number): void {
    this.ms = ms;
  }
}

let databaseCounter = 0;

/** A fresh, empty PostgreSQL database on the server of `adminUrl`. */
export function freshPostgresDatabase(adminUrl: string): Promise<string> {
  databaseCounter += 1;
  const name = `tandem_${process.pid}_${databaseCounter}_${randomBytes(3).toString("hex")}`;
  return createDatabase(adminUrl, name);
}

/** Starts a coordinator on a fresh home and database. */
export async function startTestCoordinator(opts: TestCoordinatorOptions): Promise<TestCoordinator> {
  const home = await mkdtemp(join(tmpdir(), "tandem-test-"));
  try {
    let databaseUrl: string | undefined;
    if (opts.database === "postgres") {
      if (opts.pgUrl === undefined) throw new Error("startTestCoordinator: postgres needs pgUrl");
      databaseUrl = await freshPostgresDatabase(opts.pgUrl);
    }
    return await launch({ ...opts, home, databaseUrl, adminKey: undefined });
  } catch (error) {
    await rm(home, { recursive: true, force: true });
    throw error;
  }
}

async function launch(state: {
  database: DatabaseKind;
  clock?: Clock | undefined;
  config?: CoordinatorOverrides | undefined;
  home: string;
  databaseUrl: string | undefined;
  adminKey: string | undefined;
}): Promise<TestCoordinator> {
  const coordinator = await startCoordinator(
    {
      rateLimitPerMinute: 100_000,
      ...state.config,
      // Small proofs: the tests' workers answer them on this CPU in milliseconds (config.ts).
      proof: { ...SMALL_PROOF_POLICY, ...state.config?.proof },
      home: state.home,
      host: "127.0.0.1",
      port: 0,
      logLevel: (process.env.TANDEM_TEST_LOG as "info" | undefined) ?? "silent",
      ...(state.databaseUrl === undefined ? {} : { databaseUrl: state.databaseUrl }),
    },
    state.clock === undefined ? {} : { clock: state.clock },
  );
  const adminKey = state.adminKey ?? coordinator.createdAdminKey;
  if (adminKey === undefined) {
    await coordinator.close();
    throw new Error("the coordinator created no admin key on a fresh database");
  }
  const client = (apiKey?: string) => new TandemClient({ baseUrl: coordinator.url, apiKey });
  let closed: Promise<void> | undefined;
  const stop = () => coordinator.close();
  return {
    coordinator,
    url: coordinator.url,
    home: state.home,
    database: state.database,
    databaseUrl: state.databaseUrl,
    adminKey,
    client,
    async signUp(roles) {
      const created = await client(adminKey).createAccount({
        roles: roles.filter((r): r is "consumer" | "supplier" => r !== "admin"),
      });
      return {
        accountId: created.accountId,
        apiKey: created.apiKey,
        client: client(created.apiKey),
      };
    },
    async restart() {
      await stop();
      return launch({ ...state, adminKey });
    },
    async replica(config) {
      if (state.databaseUrl === undefined) throw new Error("replica: only on PostgreSQL");
      const home = await mkdtemp(join(tmpdir(), "tandem-test-"));
      return launch({ ...state, config: { ...state.config, ...config }, home, adminKey });
    },
    close() {
      closed ??= (async () => {
        await stop();
        await rm(state.home, { recursive: true, force: true });
      })();
      return closed;
    },
  };
}

/** A fresh migrated store without a coordinator, for tests of the registry classes themselves. */
export interface TestStore extends Store {
  /** Closes the store and deletes its files. Idempotent. */
  dispose(): Promise<void>;
}

export async function openTestStore(database: DatabaseKind, pgUrl?: string): Promise<TestStore> {
  const dir = await mkdtemp(join(tmpdir(), "tandem-store-"));
  let store: Store;
  try {
    if (database === "postgres") {
      if (pgUrl === undefined) throw new Error("openTestStore: postgres needs pgUrl");
      store = await openStore({ kind: "postgres", url: await freshPostgresDatabase(pgUrl) });
    } else {
      store = await openStore({ kind: "sqlite", path: join(dir, "coordinator.db") });
    }
  } catch (error) {
    await rm(dir, { recursive: true, force: true });
    throw error;
  }
  let disposed: Promise<void> | undefined;
  return {
    db: store.db,
    dialect: store.dialect,
    newSession: store.newSession,
    close: () => store.close(),
    dispose() {
      disposed ??= (async () => {
        await store.close();
        await rm(dir, { recursive: true, force: true });
      })();
      return disposed;
    },
  };
}

/** One database kind, as a file's test cases see it. */
export interface DatabaseUnderTest {
  readonly kind: DatabaseKind;
  startCoordinator(
    opts?: Omit<TestCoordinatorOptions, "database" | "pgUrl">,
  ): Promise<TestCoordinator>;
  openStore(): Promise<TestStore>;
}

// One private PostgreSQL server per test file, started by the first suite that needs it and
// stopped after the file's last test.
let sharedPostgres: Promise<PostgresForTests> | undefined;
after(async () => {
  const server = await sharedPostgres;
  if (server !== undefined && !server.skip) await server.stop();
});

/**
 * Declares `fn`'s tests twice: in a suite on SQLite and in one on PostgreSQL. Without PostgreSQL
 * binaries the PostgreSQL suite is skipped with the reason; with TANDEM_REQUIRE_PG=1 it fails.
 */
export function forEachDatabase(name: string, fn: (db: DatabaseUnderTest) => void): void {
  describe(`${name} [sqlite]`, () => {
    fn({
      kind: "sqlite",
      startCoordinator: (opts = {}) => startTestCoordinator({ ...opts, database: "sqlite" }),
      openStore: () => openTestStore("sqlite"),
    });
  });
  describe(`${name} [postgres]`, async () => {
    sharedPostgres ??= postgresForTests();
    const server = await sharedPostgres;
    if (server.skip) {
      test("PostgreSQL", { skip: server.reason }, () => {});
      return;
    }
    fn({
      kind: "postgres",
      startCoordinator: (opts = {}) =>
        startTestCoordinator({ ...opts, database: "postgres", pgUrl: server.url }),
      openStore: () => openTestStore("postgres", server.url),
    });
  });
}

/** The foundation's tables (accounts, keys, devices, nodes and their history). */
export const TABLES = [
  "accounts",
  "api_keys",
  "devices",
  "nodes",
  "node_history",
  "node_intervals",
  "gpu_uuids",
] as const satisfies ReadonlyArray<keyof Database>;

/**
 * Tables whose rows change with time alone: each coordinator replica's sign of life, and the
 * leader's term (a replica whose event loop stalls past its lease is elected anew).
 */
const CHANGING_BY_ITSELF: readonly string[] = ["coordinator_replicas", "coordinator_leader"];

// Migrations run at start only, so each store's table list is read once.
const tableNames = new WeakMap<Store["db"], string[]>();

/**
 * Every row of every table the database holds (found by introspection, so tables added by later
 * migrations count too), in a stable order, as JSON text: compare two dumps to see any change.
 */
export async function dumpDatabase(store: Pick<Store, "db">): Promise<Record<string, string[]>> {
  const dump: Record<string, string[]> = {};
  let tables = tableNames.get(store.db);
  if (tables === undefined) {
    const found = await store.db.introspection.getTables();
    tables = found
      .map((t) => t.name)
      .filter((name) => !CHANGING_BY_ITSELF.includes(name))
      .sort();
    tableNames.set(store.db, tables);
  }
  for (const name of tables) {
    const { rows } = await sql<Record<string, unknown>>`select * from ${sql.table(name)}`.execute(
      store.db,
    );
    dump[name] = rows
      .map((row) =>
        JSON.stringify(row, (_key, value: unknown) =>
          typeof value === "bigint" ? String(value) : value,
        ),
      )
      .sort();
  }
  for (const table of TABLES) {
    if (dump[table] === undefined) throw new Error(`dumpDatabase: no table ${table}`);
  }
  return dump;
}

/** A raw HTTP answer: status, headers and the body parsed as JSON when it is JSON. */
export interface RawResponse {
  status: number;
  headers: Headers;
  text: string;
  json: unknown;
}

/**
 * One HTTP request, with nothing checked or parsed by the typed client: for tests of status codes
 * and error bodies. `body` is sent as JSON unless it is a string (sent as is).
 */
export async function httpRequest(
  baseUrl: string,
  method: string,
  path: string,
  opts: { apiKey?: string; body?: unknown; headers?: Record<string, string> } = {},
): Promise<RawResponse> {
  const headers: Record<string, string> = { ...opts.headers };
  if (opts.apiKey !== undefined) headers["authorization"] = `Bearer ${opts.apiKey}`;
  let body: string | undefined;
  if (opts.body !== undefined) {
    body = typeof opts.body === "string" ? opts.body : JSON.stringify(opts.body);
    headers["content-type"] ??= "application/json";
  }
  const response = await fetch(new URL(path, baseUrl), {
    method,
    headers,
    ...(body === undefined ? {} : { body }),
    signal: AbortSignal.timeout(30_000),
  });
  if (response.headers.get("content-type")?.startsWith("text/event-stream")) {
    await response.body?.cancel();
    return { status: response.status, headers: response.headers, text: "", json: undefined };
  }
  const text = await response.text();
  let json: unknown;
  try {
    json = text === "" ? undefined : JSON.parse(text);
  } catch {
    json = undefined;
  }
  return { status: response.status, headers: response.headers, text, json };
}

/** Every route the coordinator's router holds, read from Fastify's own route tree. */
export function listRoutes(app: Coordinator["app"]): Array<{ method: string; url: string }> {
  const routes: Array<{ method: string; url: string }> = [];
  const stack: string[] = [];
  for (const line of app.printRoutes({ commonPrefix: false }).split("\n")) {
    const match = /^([│ ]*)[├└]── (\S+)(?: \(([^)]*)\))?$/.exec(line.trimEnd());
    if (match === null) continue;
    const depth = match[1]!.length / 4;
    const url = (stack[depth - 1] ?? "") + match[2]!;
    stack.length = depth;
    stack[depth] = url;
    for (const method of match[3]?.split(", ") ?? []) routes.push({ method, url });
  }
  return routes;
}

/** Asserts an error answer: the status, the exact code, and the one error body shape. */
export function assertError(
  response: RawResponse,
  status: number,
  code: string,
  context = "",
): { code: string; message: string; details?: Record<string, unknown> | undefined } {
  const where = `${context} → ${response.status} ${response.text.slice(0, 300)}`;
  if (response.status !== status || typeof response.json !== "object" || response.json === null) {
    throw new Error(`expected ${status} ${code}: ${where}`);
  }
  const parsed = ErrorBody.safeParse(response.json);
  if (!parsed.success) throw new Error(`not the error body shape: ${where}`);
  if (parsed.data.error.code !== code) throw new Error(`expected code ${code}: ${where}`);
  if (parsed.data.error.message === "") throw new Error(`empty error message: ${where}`);
  return parsed.data.error;
}
