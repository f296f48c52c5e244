/**
 * `tandem admin backup --to FILE` (issue 20): a copy of a running coordinator's SQLite database,
 * taken while it serves, that a coordinator started on it serves from: the same accounts, keys and
 * ledger. A target that exists, or a home without a database, is refused and nothing is written.
 */
import assert from "node:assert/strict";
import { copyFile, mkdir, mkdtemp, readFile, rm, stat } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { TandemClient } from "../src/client/client.ts";
import { startCoordinator } from "../src/coordinator/main.ts";
import { startTestCoordinator } from "./support/coordinator.ts";
import { spawnTandem } from "./support/processes.ts";
import { fund } from "./support/workers.ts";

async function backup(home: string, to: string) {
  const run = spawnTandem(["admin", "backup", "--to", to, "--json"], { TANDEM_HOME: home });
  const code = await run.exited;
  return { code, json: JSON.parse(run.stdout.join("\n") || "null") as Record<string, unknown> };
}

test("a backup taken while the coordinator serves restores its accounts and ledger", async (t) => {
  const dir = await mkdtemp(join(tmpdir(), "tandem-backup-"));
  t.after(() => rm(dir, { recursive: true, force: true }));
  const tc = await startTestCoordinator({ database: "sqlite" });
  t.after(() => tc.close());
  const { apiKey, accountId } = await tc.signUp(["consumer"]);
  await fund(tc, accountId, "12.5");
  const before = await tc.client(apiKey).wallet();

  const file = join(dir, "coordinator-backup.db");
  const taken = await backup(tc.home, file);
  assert.equal(taken.code, 0, JSON.stringify(taken.json));
  assert.equal(taken.json.path, file);
  assert.equal(taken.json.bytes, (await stat(file)).size);
  assert.equal((await stat(file)).mode & 0o777, 0o600);
  // The coordinator served on meanwhile and still does.
  assert.deepEqual(await tc.client(apiKey).wallet(), before);

  const again = await backup(tc.home, file);
  assert.equal(again.code, 1);
  assert.equal((again.json.error as { code: string }).code, "BACKUP_EXISTS");
  await tc.close();

  const restoredHome = join(dir, "restored");
  await mkdir(restoredHome, { mode: 0o700 });
  await copyFile(file, join(restoredHome, "coordinator.db"));
  const restored = await startCoordinator({
    home: restoredHome,
    host: "127.0.0.1",
    port: 0,
    logLevel: "silent",
  });
  t.after(() => restored.close());
  assert.equal(restored.createdAdminKey, undefined, "the restored database has its admin");
  const client = new TandemClient({ baseUrl: restored.url, apiKey });
  assert.equal((await client.me()).accountId, accountId);
  assert.deepEqual(await client.wallet(), before);
});

test("no database in the home: refused, nothing written", async (t) => {
  const home = await mkdtemp(join(tmpdir(), "tandem-backup-empty-"));
  t.after(() => rm(home, { recursive: true, force: true }));
  const file = join(home, "copy.db");
  const refused = await backup(home, file);
  assert.equal(refused.code, 1);
  assert.equal((refused.json.error as { code: string }).code, "NO_DATABASE");
  await assert.rejects(readFile(file), { code: "ENOENT" });
});
