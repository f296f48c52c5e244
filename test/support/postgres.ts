/**
 * A private PostgreSQL server for one test run: `initdb` into a temp dir, `pg_ctl start` on a free
 * loopback port with `fsync=off`, `pg_ctl -m fast stop` and delete the dir at the end (≈ 0.6 s to
 * start on the CI machine). Nothing is shared with a system cluster: its own data dir, its own
 * socket dir, trust auth for the superuser `app` on 127.0.0.1 only.
 *
 * initdb refuses to run as root, so as root every PostgreSQL command runs as the `postgres` OS
 * user (`runuser`, else `su`) and the temp dir is chowned to it.
 *
 * `pg_ctl` detaches the server into its own session, so a test process that dies without calling
 * `stop()` would leak it: an exit/SIGINT/SIGTERM hook stops every server this process still runs
 * (`-m immediate`). A SIGKILLed test process still leaks one; `.ci/run` sweeps those up.
 */
import { execFile, execFileSync, spawnSync } from "node:child_process";
import {
  accessSync,
  constants,
  existsSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  realpathSync,
  rmSync,
} from "node:fs";
import { chown, rm } from "node:fs/promises";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { delimiter, dirname, join } from "node:path";
import pg from "pg";

/** A running private server. */
export interface PostgresServer {
  /** `postgres://app@127.0.0.1:<port>/postgres`; `app` is a superuser, no password. */
  readonly url: string;
  /** Fast shutdown, then deletes the data dir. Idempotent. */
  stop(): Promise<void>;
}

/** What `postgresForTests()` returns: a server to use, or why the PostgreSQL tests are skipped. */
export type PostgresForTests =
  { readonly skip: true; readonly reason: string } | ({ readonly skip: false } & PostgresServer);

/** Whether `startPostgres()` can work here, and if not, why (for a skip message). */
export type PostgresAvailability = { available: true } | { available: false; reason: string };

/** Env var: when `1`, missing binaries or a failed start throw instead of skipping. */
export const REQUIRE_PG_ENV = "TANDEM_REQUIRE_PG";

const START_TIMEOUT_S = 60;
const COMMAND_TIMEOUT_MS = 90_000;
const MAX_START_ATTEMPTS = 3;
const INITDB_FLAGS = ["-U", "app", "--auth=trust", "-E", "UTF8", "--locale=C", "--no-sync"];
const DATABASE_NAME = /^[a-z_][a-z0-9_]{0,62}$/;

interface Toolchain {
  readonly bindir: string;
  /** Wraps an argv to run as the `postgres` OS user when root; identity otherwise. */
  readonly asPostgres: (argv: readonly string[]) => readonly string[];
  /** uid/gid to chown the temp dir to when running as root. */
  readonly owner: { uid: number; gid: number } | undefined;
}

/** Whether a private server can be started here: binaries found and, as root, a `postgres` user. */
export function postgresAvailability(): PostgresAvailability {
  const found = findToolchain();
  return found.ok ? { available: true } : { available: false, reason: found.reason };
}

/**
 * Starts a private server on a free 127.0.0.1 port. Throws (with the initdb or server log) when
 * PostgreSQL is missing or does not start.
 */
export async function startPostgres(): Promise<PostgresServer> {
  const found = findToolchain();
  if (!found.ok) throw new Error(`PostgreSQL unavailable: ${found.reason}`);
  const tools = found.toolchain;
  const dir = mkdtempSync(join(tmpdir(), "tandem-pg-"));
  const dataDir = join(dir, "data");
  const logFile = join(dir, "server.log");
  try {
    if (tools.owner) await chown(dir, tools.owner.uid, tools.owner.gid);
    await run(tools, "initdb", ["-D", dataDir, ...INITDB_FLAGS]);
    const port = await startOnFreePort(tools, dir, dataDir, logFile);
    const server = { tools, dataDir, dir };
    running.add(server);
    installExitHook();
    let stopped: Promise<void> | undefined;
    return {
      url: `postgres://app@127.0.0.1:${port}/postgres`,
      stop: () => (stopped ??= stopServer(server)),
    };
  } catch (error) {
    await rm(dir, { recursive: true, force: true });
    throw error;
  }
}

/**
 * For a test file: a started server, or `{ skip: true, reason }` (reason also printed to stderr)
 * when PostgreSQL is missing or fails to start. With `TANDEM_REQUIRE_PG=1` (CI) it throws instead,
 * so a machine without PostgreSQL fails the run rather than silently skipping.
 *
 * ```ts
 * const pg = await postgresForTests();
 * if (pg.skip) test("postgres store", { skip: pg.reason }, () => {});
 * else { after(() => pg.stop()); test("…", async () => { … pg.url … }); }
 * ```
 */
export async function postgresForTests(): Promise<PostgresForTests> {
  const required = process.env[REQUIRE_PG_ENV] === "1";
  const availability = postgresAvailability();
  if (!availability.available) {
    if (required) {
      throw new Error(`${REQUIRE_PG_ENV}=1 but PostgreSQL is unavailable: ${availability.reason}`);
    }
    return skipWith(availability.reason);
  }
  try {
    const server = await startPostgres();
    return { skip: false, url: server.url, stop: () => server.stop() };
  } catch (error) {
    if (required) {
      throw new Error(`${REQUIRE_PG_ENV}=1 but PostgreSQL failed to start`, { cause: error });
    }
    return skipWith(`PostgreSQL failed to start: ${errorMessage(error)}`);
  }
}

/**
 * Creates an empty database `name` (lowercase identifier) on the server of `adminUrl` and returns
 * its URL, so each test file or test can have an isolated database on one server.
 */
export async function createDatabase(adminUrl: string, name: string): Promise<string> {
  if (!DATABASE_NAME.test(name)) {
    throw new TypeError(
      `database name must match ${String(DATABASE_NAME)}, got ${JSON.stringify(name)}`,
    );
  }
  const client = new pg.Client({ connectionString: adminUrl });
  await client.connect();
  try {
    await client.query(`CREATE DATABASE "${name}"`);
  } finally {
    await client.end();
  }
  const url = new URL(adminUrl);
  url.pathname = `/${name}`;
  return url.toString();
}

function skipWith(reason: string): PostgresForTests {
  process.stderr.write(`skipping PostgreSQL tests: ${reason}\n`);
  return { skip: true, reason };
}

// ---------------------------------------------------------------------------------------------
// Finding the binaries

function findToolchain(): { ok: true; toolchain: Toolchain } | { ok: false; reason: string } {
  const bindir = findBindir();
  if (bindir === undefined) {
    return {
      ok: false,
      reason:
        "no PostgreSQL server binaries (initdb + pg_ctl) in `pg_config --bindir`, " +
        "/usr/lib/postgresql/*/bin or PATH (Debian: apt-get install postgresql)",
    };
  }
  if (process.getuid?.() !== 0) {
    return { ok: true, toolchain: { bindir, asPostgres: (argv) => argv, owner: undefined } };
  }
  const owner = postgresUser();
  if (owner === undefined) {
    return { ok: false, reason: "running as root and there is no `postgres` OS user for initdb" };
  }
  const runuser = findOnPath("runuser");
  if (runuser !== undefined) {
    return {
      ok: true,
      toolchain: {
        bindir,
        owner,
        asPostgres: (argv) => [runuser, "-u", "postgres", "--", ...argv],
      },
    };
  }
  const su = findOnPath("su");
  if (su !== undefined) {
    const asPostgres = (argv: readonly string[]): readonly string[] => [
      su,
      "postgres",
      "-s",
      "/bin/sh",
      "-c",
      argv.map(shellQuote).join(" "),
    ];
    return { ok: true, toolchain: { bindir, owner, asPostgres } };
  }
  return { ok: false, reason: "running as root and neither runuser nor su is available" };
}

/**
 * The real bindir holding both initdb and pg_ctl: pg_config's (which may belong to a libpq-dev of
 * another version), else the highest /usr/lib/postgresql/N/bin, else where PATH's initdb resolves.
 */
function findBindir(): string | undefined {
  const candidates: string[] = [];
  try {
    const out = execFileSync("pg_config", ["--bindir"], { encoding: "utf8", stdio: "pipe" });
    candidates.push(out.trim());
  } catch {
    // No pg_config (it ships in libpq-dev, not the server package): fall through to the scan.
  }
  candidates.push(...debianBindirs());
  const initdb = findOnPath("initdb");
  if (initdb !== undefined) candidates.push(dirname(realpathSync(initdb)));
  return candidates.find(
    (dir) => isExecutable(join(dir, "initdb")) && isExecutable(join(dir, "pg_ctl")),
  );
}

function debianBindirs(): string[] {
  const root = "/usr/lib/postgresql";
  if (!existsSync(root)) return [];
  return readdirSync(root)
    .filter((version) => /^\d+(\.\d+)?$/.test(version))
    .sort((a, b) => Number(b) - Number(a))
    .map((version) => join(root, version, "bin"));
}

function findOnPath(name: string): string | undefined {
  const dirs = [...(process.env["PATH"] ?? "").split(delimiter), "/usr/sbin", "/sbin"];
  return dirs
    .filter((d) => d !== "")
    .map((d) => join(d, name))
    .find(isExecutable);
}

function isExecutable(file: string): boolean {
  try {
    accessSync(file, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

function postgresUser(): { uid: number; gid: number } | undefined {
  try {
    const uid = Number(execFileSync("id", ["-u", "postgres"], { encoding: "utf8", stdio: "pipe" }));
    const gid = Number(execFileSync("id", ["-g", "postgres"], { encoding: "utf8", stdio: "pipe" }));
    return Number.isInteger(uid) && Number.isInteger(gid) ? { uid, gid } : undefined;
  } catch {
    return undefined; // `id` exits 1 for an unknown user.
  }
}

function shellQuote(arg: string): string {
  return `'${arg.replaceAll("'", `'\\''`)}'`;
}

// ---------------------------------------------------------------------------------------------
// Running and stopping

async function startOnFreePort(
  tools: Toolchain,
  dir: string,
  dataDir: string,
  logFile: string,
): Promise<number> {
  // The port is free when picked but could be taken before the server binds it: retry on that.
  for (let attempt = 1; ; attempt++) {
    const port = await freeLoopbackPort();
    const options = [
      `-p ${port}`,
      "-c listen_addresses=127.0.0.1",
      "-c fsync=off",
      "-c synchronous_commit=off",
      "-c full_page_writes=off",
      `-k ${shellQuote(dir)}`, // pg_ctl passes -o through /bin/sh
    ].join(" ");
    try {
      const where = ["-D", dataDir, "-l", logFile, "-o", options];
      await run(tools, "pg_ctl", [...where, "-w", "-t", String(START_TIMEOUT_S), "start"]);
      return port;
    } catch (error) {
      const log = readTail(logFile);
      const portTaken = /could not bind|address already in use/i.test(log);
      if (portTaken && attempt < MAX_START_ATTEMPTS) continue;
      throw new Error(`pg_ctl start failed on port ${port}; server log:\n${log}`, { cause: error });
    }
  }
}

/** A TCP port free on 127.0.0.1 when probed (another process may still take it before use). */
export function freeLoopbackPort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const probe = createServer();
    probe.once("error", reject);
    probe.listen(0, "127.0.0.1", () => {
      const address = probe.address();
      probe.close(() => {
        if (address !== null && typeof address === "object") resolve(address.port);
        else reject(new Error(`unexpected probe address ${String(address)}`));
      });
    });
  });
}

function run(tools: Toolchain, command: string, args: readonly string[]): Promise<string> {
  const [file, ...argv] = tools.asPostgres([join(tools.bindir, command), ...args]);
  return new Promise((resolve, reject) => {
    execFile(
      file!,
      argv,
      {
        env: cleanEnv(),
        timeout: COMMAND_TIMEOUT_MS,
        maxBuffer: 4 * 1024 * 1024,
        encoding: "utf8",
      },
      (error, stdout, stderr) => {
        if (error) {
          // stderr holds the error itself; stdout only initdb's and pg_ctl's progress chatter.
          const output = stderr.trim() || stdout.trim() || error.message;
          reject(new Error(`${command} failed: ${output}`, { cause: error }));
        } else {
          resolve(stdout);
        }
      },
    );
  });
}

/** The caller's environment minus PG* variables (PGDATA, PGPORT, … would redirect the tools). */
function cleanEnv(): NodeJS.ProcessEnv {
  return Object.fromEntries(Object.entries(process.env).filter(([key]) => !key.startsWith("PG")));
}

function readTail(file: string): string {
  try {
    return readFileSync(file, "utf8").split("\n").slice(-30).join("\n");
  } catch (error) {
    return `(no log: ${errorMessage(error)})`;
  }
}

function errorMessage(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

interface RunningServer {
  readonly tools: Toolchain;
  readonly dataDir: string;
  readonly dir: string;
}

async function stopServer(server: RunningServer): Promise<void> {
  running.delete(server);
  try {
    await run(server.tools, "pg_ctl", ["-D", server.dataDir, "-m", "fast", "-w", "stop"]);
  } finally {
    await rm(server.dir, { recursive: true, force: true });
  }
}

// Servers this process still runs, stopped synchronously if it exits or is signalled first.
const running = new Set<RunningServer>();
let exitHookInstalled = false;

function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.once("exit", stopAllSync);
  for (const signal of ["SIGINT", "SIGTERM"] as const) {
    process.once(signal, () => {
      stopAllSync();
      // Without other listeners the default action was ours to keep: die of the same signal.
      if (process.listenerCount(signal) === 0) process.kill(process.pid, signal);
    });
  }
}

function stopAllSync(): void {
  for (const server of running) {
    running.delete(server);
    const [file, ...argv] = server.tools.asPostgres([
      join(server.tools.bindir, "pg_ctl"),
      "-D",
      server.dataDir,
      "-m",
      "immediate",
      "-w",
      "stop",
    ]);
    spawnSync(file!, argv, { env: cleanEnv(), stdio: "ignore", timeout: 30_000 });
    rmSync(server.dir, { recursive: true, force: true });
  }
}
