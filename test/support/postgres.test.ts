import assert from "node:assert/strict";
import { connect } from "node:net";
import { after, test } from "node:test";
import pg from "pg";
import { createDatabase, postgresForTests, startPostgres } from "./postgres.ts";

const server = await postgresForTests();

async function queryOne(url: string, sql: string): Promise<Record<string, unknown>> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    const result = await client.query<Record<string, unknown>>(sql);
    assert.equal(result.rows.length, 1);
    return result.rows[0]!;
  } finally {
    await client.end();
  }
}

/** Resolves with the connect error code, or "connected". */
function tryConnect(port: number): Promise<string> {
  return new Promise((resolve) => {
    const socket = connect({ host: "127.0.0.1", port });
    socket.once("connect", () => {
      socket.destroy();
      resolve("connected");
    });
    socket.once("error", (error: NodeJS.ErrnoException) => resolve(error.code ?? error.message));
  });
}

if (server.skip) {
  test("private PostgreSQL server", { skip: server.reason }, () => {});
} else {
  after(() => server.stop());

  test("the server listens on loopback and answers as superuser app", async () => {
    const url = new URL(server.url);
    assert.equal(url.protocol, "postgres:");
    assert.equal(url.hostname, "127.0.0.1");
    assert.equal(url.username, "app");
    assert.equal(url.pathname, "/postgres");

    const row = await queryOne(server.url, "select 1 as one, current_user as who");
    assert.deepEqual(row, { one: 1, who: "app" });
  });

  test("createDatabase returns the URL of a fresh, separate database", async () => {
    const url = await createDatabase(server.url, "tandem_store_a");
    assert.equal(new URL(url).pathname, "/tandem_store_a");
    assert.deepEqual(await queryOne(url, "select current_database() as db"), {
      db: "tandem_store_a",
    });

    const client = new pg.Client({ connectionString: url });
    await client.connect();
    await client.query("create table t (id int)");
    await client.end();
    const other = await createDatabase(server.url, "tandem_store_b");
    assert.deepEqual(await queryOne(other, "select to_regclass('t') as t"), { t: null });
  });

  test("createDatabase rejects a name that is not a plain identifier", async () => {
    await assert.rejects(createDatabase(server.url, 'x"; drop database postgres; --'), TypeError);
    await assert.rejects(createDatabase(server.url, "Upper"), TypeError);
  });

  test("stop() shuts the server down, frees its port and is idempotent", async () => {
    const own = await startPostgres();
    const port = Number(new URL(own.url).port);
    assert.deepEqual(await queryOne(own.url, "select 1 as one"), { one: 1 });
    assert.equal(await tryConnect(port), "connected");

    await own.stop();
    assert.equal(await tryConnect(port), "ECONNREFUSED");
    await own.stop();
  });
}
