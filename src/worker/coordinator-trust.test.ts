import assert from "node:assert/strict";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { parseWorkerConfig } from "./config.ts";
import {
  assertSecureCoordinator,
  explainConnectionError,
  httpUrlOf,
  isLoopbackHost,
  readCoordinatorCa,
} from "./coordinator-trust.ts";

test("loopback is 127.0.0.0/8, ::1 (and IPv4-mapped 127/8), localhost; nothing else", () => {
  for (const host of [
    "127.0.0.1",
    "127.8.9.10",
    "[::1]",
    "[::ffff:7f00:1]",
    "localhost",
    "a.localhost",
  ])
    assert.equal(isLoopbackHost(host), true, host);
  for (const host of [
    "198.51.100.1",
    "0.0.0.0",
    "[::]",
    "[::ffff:c633:6401]",
    "10.0.0.1",
    "coordinator",
    "localhost.example.com",
    "128.0.0.1",
  ])
    assert.equal(isLoopbackHost(host), false, host);
});

test("plain http/ws to another machine is refused unless insecure; TLS and loopback pass", () => {
  for (const url of [
    "http://198.51.100.1:7400",
    "ws://coordinator.example:7400",
    "http://[2001:db8::1]/",
  ])
    assert.throws(() => assertSecureCoordinator(url, false), { code: "INSECURE_COORDINATOR" });
  for (const url of ["http://198.51.100.1:7400", "ws://coordinator.example:7400"])
    assertSecureCoordinator(url, true);
  for (const url of [
    "https://198.51.100.1",
    "wss://coordinator.example",
    "http://127.0.0.1:7400",
    "ws://localhost:1",
  ])
    assertSecureCoordinator(url, false);
});

test("the worker config refuses the same, so a library start is as safe as the CLI", () => {
  const base = { home: "/tmp/x", region: "eu-west", zone: "eu-west-a" };
  assert.throws(() => parseWorkerConfig({ ...base, coordinatorUrl: "ws://198.51.100.1:7400" }), {
    code: "INSECURE_COORDINATOR",
  });
  const insecure = parseWorkerConfig({
    ...base,
    coordinatorUrl: "ws://198.51.100.1:7400",
    insecure: true,
  });
  assert.equal(insecure.coordinatorUrl, "http://198.51.100.1:7400/");
  assert.equal(
    parseWorkerConfig({ ...base, coordinatorUrl: "wss://c.example" }).coordinatorUrl,
    "https://c.example/",
  );
  assert.throws(
    () => parseWorkerConfig({ ...base, coordinatorUrl: "ftp://c.example" }),
    /coordinatorUrl/,
  );
});

test("ws and wss name the same coordinator as http and https", () => {
  assert.equal(httpUrlOf("ws://h:1/"), "http://h:1/");
  assert.equal(httpUrlOf("wss://h/"), "https://h/");
  assert.equal(httpUrlOf("https://h/"), "https://h/");
});

test("--ca-file: unreadable or not a certificate is CA_FILE_INVALID", async (t) => {
  const dir = await mkdtemp(join(tmpdir(), "tandem-ca-file-"));
  t.after(() => rm(dir, { recursive: true, force: true }));
  await assert.rejects(readCoordinatorCa(join(dir, "missing.pem")), { code: "CA_FILE_INVALID" });
  await writeFile(
    join(dir, "key.pem"),
    "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
  );
  await assert.rejects(readCoordinatorCa(join(dir, "key.pem")), { code: "CA_FILE_INVALID" });
});

test("a refused certificate is explained with the way to trust it; other errors stay as they are", () => {
  const refused = Object.assign(new Error("self-signed certificate in certificate chain"), {
    code: "SELF_SIGNED_CERT_IN_CHAIN",
  });
  const explained = explainConnectionError(refused, "https://c.example:7400/");
  assert.equal((explained as { code?: string }).code, "COORDINATOR_CERT_UNTRUSTED");
  assert.match(explained.message, /c\.example:7400.*--ca-file/);
  assert.equal(explained.cause, refused);
  const refusedConnection = Object.assign(new Error("connect ECONNREFUSED"), {
    code: "ECONNREFUSED",
  });
  assert.equal(explainConnectionError(refusedConnection, "https://c.example/"), refusedConnection);
});
