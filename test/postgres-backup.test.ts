/**
 * The README's PostgreSQL backup, as written (issue 20): `pg_dump --format=custom` of a serving
 * coordinator's database, `pg_restore --no-owner` into an empty one, and a coordinator started on
 * the copy serves the same accounts, keys and ledger.
 */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, test } from "node:test";
import { TandemClient } from "../src/client/client.ts";
import { startCoordinator } from "../src/coordinator/main.ts";
import { freshPostgresDatabase } from "./support/coordinator.ts";
import { postgresForTests } from "./support/postgres.ts";
import { fund } from "./support/workers.ts";

const server = await postgresForTests();

function run(command: string, args: string[]): void {
  const result = spawnSync(command, args, { encoding: "utf8" });
  assert.equal(result.status, 0, `${command}: ${result.stderr}`);
}

describe("PostgreSQL backup", { skip: server.skip ? server.reason : false }, () => {
  test("pg_dump while serving, pg_restore into an empty database, serve from it", async (t) => {
    if (server.skip) return;
    t.after(() => server.stop());
    const dir = await mkdtemp(join(tmpdir(), "tandem-pgbackup-"));
    t.after(() => rm(dir, { recursive: true, force: true }));
    const start = (home: string, databaseUrl: string) =>
      startCoordinator({ home, databaseUrl, host: "127.0.0.1", port: 0, logLevel: "silent" });

    const url = await freshPostgresDatabase(server.url);
    const original = await start(join(dir, "original"), url);
    t.after(() => original.close());
    const admin = original.createdAdminKey!;
    const { accountId, apiKey } = await new TandemClient({
      baseUrl: original.url,
      apiKey: admin,
    }).createAccount({ roles: ["consumer"] });
    await fund({ url: original.url, adminKey: admin }, accountId, "7.25");
    const before = await new TandemClient({ baseUrl: original.url, apiKey }).wallet();

    const dump = join(dir, "tandem.dump");
    run("pg_dump", ["--format=custom", `--file=${dump}`, url]);
    await original.close();

    const restoredUrl = await freshPostgresDatabase(server.url);
    run("pg_restore", ["--no-owner", `--dbname=${restoredUrl}`, dump]);
    const restored = await start(join(dir, "restored"), restoredUrl);
    t.after(() => restored.close());
    assert.equal(restored.createdAdminKey, undefined, "the restored database has its admin");
    const client = new TandemClient({ baseUrl: restored.url, apiKey });
    assert.equal((await client.me()).accountId, accountId);
    assert.deepEqual(await client.wallet(), before);
  });
});
