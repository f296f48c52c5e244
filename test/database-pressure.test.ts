// The database under pressure (issue 18.9). SQLite: another process holding the write lock, and a
// full disk. Writes wait off the event loop and then answer 503 UNAVAILABLE with nothing changed;
// reads and /health keep answering meanwhile; everything works again once the pressure is gone,
// and the coordinator never exits. PostgreSQL: the server goes away under a running coordinator.
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { mkdtemp, open, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, it } from "node:test";
import SQLite from "better-sqlite3";
import { TandemApiError } from "../src/client/client.ts";
import { startTestCoordinator } from "./support/coordinator.ts";
import { postgresForTests } from "./support/postgres.ts";

const refusedUnavailable = (pattern: RegExp) => (error: unknown) =>
  error instanceof TandemApiError &&
  error.status === 503 &&
  error.code === "UNAVAILABLE" &&
  pattern.test(error.message);

/** A tmpfs of `sizeMiB` (root only): why not, when it cannot be mounted here. */
async function smallDisk(
  sizeMiB: number,
): Promise<{ dir: string; unmount(): Promise<void> } | string> {
  if (process.getuid?.() !== 0) return "mounting a small tmpfs needs root";
  const dir = await mkdtemp(join(tmpdir(), "tandem-small-disk-"));
  try {
    execFileSync("mount", ["-t", "tmpfs", "-o", `size=${sizeMiB}m`, "tmpfs", dir]);
  } catch (error) {
    await rm(dir, { recursive: true, force: true });
    return `cannot mount a tmpfs: ${String(error)}`;
  }
  return {
    dir,
    async unmount() {
      execFileSync("umount", ["-l", dir]);
      await rm(dir, { recursive: true, force: true });
    },
  };
}

describe("database pressure on SQLite", { timeout: 120_000 }, () => {
  it("waits for another process's lock without stalling, then answers 503 and changes nothing", async (t) => {
    const tc = await startTestCoordinator({
      database: "sqlite",
      config: { sqliteBusyWaitMs: 1500 },
    });
    t.after(() => tc.close());
    const accounts = async () =>
      (await tc.coordinator.store.db.selectFrom("accounts").select("id").execute()).length;
    const before = await accounts();
    const intruder = new SQLite(join(tc.home, "coordinator.db"));
    t.after(() => intruder.close());
    intruder.prepare("begin immediate").run();

    // A write waits for the lock; meanwhile the event loop serves reads and /health.
    let writeDone = false;
    const write = tc
      .client()
      .createAccount({ roles: ["consumer"] })
      .finally(() => (writeDone = true));
    const health = await tc.client().health();
    assert.equal(health.status, "ok");
    assert.equal(writeDone, false, "/health answered while the write was still waiting");
    await assert.rejects(write, refusedUnavailable(/locked by another process/));

    // The lock goes away: the same write succeeds, and only it changed anything.
    intruder.prepare("rollback").run();
    await tc.client().createAccount({ roles: ["consumer"] });
    assert.equal(await accounts(), before + 1);
  });

  it("answers 503 on a full disk and works again once there is room", async (t) => {
    const disk = await smallDisk(16);
    if (typeof disk === "string") return t.skip(disk);
    t.after(() => disk.unmount());
    const tc = await startTestCoordinator({
      database: "sqlite",
      config: { sqlitePath: join(disk.dir, "coordinator.db") },
    });
    t.after(() => tc.close());
    // Fill what is left of the disk.
    const filler = join(disk.dir, "filler");
    const handle = await open(filler, "w");
    const chunk = Buffer.alloc(64 * 1024);
    try {
      for (;;) await handle.write(chunk);
    } catch (error) {
      assert.equal((error as NodeJS.ErrnoException).code, "ENOSPC");
    } finally {
      await handle.close();
    }
    let refused = 0;
    for (let i = 0; i < 200 && refused === 0; i++) {
      await tc
        .client()
        .createAccount({ roles: ["consumer"] })
        .catch((error: unknown) => {
          assert.ok(refusedUnavailable(/disk is full|disk failed/)(error), String(error));
          refused++;
        });
    }
    assert.equal(refused, 1, "a write on a full disk is refused 503");
    assert.equal((await tc.client().health()).status, "ok");

    await rm(filler);
    await tc.client().createAccount({ roles: ["consumer"] });
  });
});

describe("database pressure on PostgreSQL", { timeout: 120_000 }, () => {
  it("answers 503 when the server is gone, and keeps running", async (t) => {
    // A server of this test's own: it is stopped under the coordinator.
    const pg = await postgresForTests();
    if (pg.skip) return t.skip(pg.reason);
    t.after(() => pg.stop());
    const tc = await startTestCoordinator({ database: "postgres", pgUrl: pg.url });
    t.after(() => tc.close());
    await tc.client().createAccount({ roles: ["consumer"] });

    await pg.stop();
    await assert.rejects(
      tc.client().createAccount({ roles: ["consumer"] }),
      refusedUnavailable(/connection to the database was lost|cannot be reached|shutting down/),
    );
    await assert.rejects(
      tc.client().getNode(`node_${"0".repeat(26)}`),
      refusedUnavailable(/database/),
      "a read that needs the database answers 503 too, not 404 or 500",
    );
    assert.equal((await tc.client().health()).status, "ok", "the coordinator is still up");
  });
});
