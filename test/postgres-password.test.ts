// The PostgreSQL password need not be in --database-url, where `ps` shows it (issue 18): a URL
// without one plus --database-password-file, or PGPASSWORD, against a private server whose role
// needs a password (scram-sha-256 over TCP).
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import pg from "pg";
import { startCoordinator } from "../src/coordinator/main.ts";
import { postgresForTests } from "./support/postgres.ts";
import { spawnTandem } from "./support/processes.ts";

const server = await postgresForTests();

describe(
  "PostgreSQL password apart from the URL",
  { skip: server.skip ? server.reason : false },
  () => {
    const password = randomBytes(12).toString("hex");
    let url: string;
    let dir: string;
    let passwordFile: string;

    before(async () => {
      if (server.skip) return;
      dir = await mkdtemp(join(tmpdir(), "tandem-pgpw-"));
      passwordFile = join(dir, "pg-password");
      await writeFile(passwordFile, `${password}\n`, { mode: 0o600 });
      // The role `tandem_pw` must give its password over TCP; the superuser keeps trust auth.
      const admin = new pg.Client({ connectionString: server.url });
      await admin.connect();
      try {
        await admin.query("SET password_encryption = 'scram-sha-256'");
        await admin.query(`CREATE ROLE tandem_pw LOGIN PASSWORD '${password}'`);
        await admin.query("CREATE DATABASE tandem_pw OWNER tandem_pw");
        const hba = (await admin.query<{ hba_file: string }>("SHOW hba_file")).rows[0]!.hba_file;
        const lines = [
          "local all all trust",
          "host all tandem_pw 127.0.0.1/32 scram-sha-256",
          "host all all 127.0.0.1/32 trust",
        ];
        await admin.query(`COPY (VALUES ${lines.map((l) => `('${l}')`).join(", ")}) TO '${hba}'`);
        await admin.query("SELECT pg_reload_conf()");
      } finally {
        await admin.end();
      }
      const parsed = new URL(server.url);
      parsed.username = "tandem_pw";
      parsed.pathname = "/tandem_pw";
      url = parsed.toString();
    });
    after(async () => {
      if (server.skip) return;
      await rm(dir, { recursive: true, force: true });
      await server.stop();
    });

    it("refuses to start without the password", async () => {
      await assert.rejects(
        startCoordinator({
          home: join(dir, "none"),
          port: 0,
          databaseUrl: url,
          logLevel: "silent",
        }),
        (error: Error) => /password/.test(String(error.cause)),
      );
    });

    it("starts with the password from a file, which stays out of its command line", async () => {
      const coordinator = spawnTandem(
        [
          "coordinator",
          "--port",
          "0",
          "--json",
          "--log-level",
          "warn",
          "--database-url",
          url,
          "--database-password-file",
          passwordFile,
        ],
        { TANDEM_HOME: join(dir, "file") },
      );
      try {
        const ready = JSON.parse(await coordinator.line(/^\{/)) as { url: string };
        const health = await fetch(new URL("/v1/health", ready.url));
        assert.equal(health.status, 200);
        assert.equal(((await health.json()) as { database: string }).database, "postgres");
        const stats = await fetch(new URL("/v1/network/stats", ready.url));
        assert.equal(stats.status, 200, "it reads the database");
        const cmdline = await readFile(`/proc/${coordinator.child.pid}/cmdline`, "utf8");
        assert.ok(!cmdline.includes(password), "the password is not in argv");
      } finally {
        coordinator.child.kill("SIGTERM");
        await coordinator.exited;
      }
    });

    it("starts with PGPASSWORD", async () => {
      process.env.PGPASSWORD = password;
      try {
        const coordinator = await startCoordinator({
          home: join(dir, "env"),
          port: 0,
          databaseUrl: url,
          logLevel: "silent",
        });
        await coordinator.close();
      } finally {
        delete process.env.PGPASSWORD;
      }
    });

    it("names the field when the password file cannot be read", async () => {
      await assert.rejects(
        startCoordinator({
          home: join(dir, "missing"),
          port: 0,
          databaseUrl: url,
          databasePasswordFile: join(dir, "absent"),
          logLevel: "silent",
        }),
        /databasePasswordFile: cannot read/,
      );
    });
  },
);
