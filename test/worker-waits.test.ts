// A worker started before its coordinator (issue 20): `tandem worker start` waits and retries with
// backoff, saying so in its log, and registers once the coordinator answers; a refusal that cannot
// heal (a bad enrollment token) still ends it at once. Real processes and sockets: the coordinator
// "comes up" at the worker's address when a plain TCP relay to a running one starts listening there.
import assert from "node:assert/strict";
import { mkdtemp, rm } from "node:fs/promises";
import { createServer, connect, type AddressInfo, type Server } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { startTestCoordinator } from "./support/coordinator.ts";
import { eventually, spawnTandem, type TandemProcess } from "./support/processes.ts";
import { enrollmentEnv } from "./support/workers.ts";

const ARGS = ["worker", "start", "--json", "--region", "eu-west", "--zone", "eu-west-a"];
const FLAGS = ["--allow-unsandboxed", "--no-job-networks"];

/** A port nothing listens on (for now). */
async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  await new Promise((resolve) => server.close(resolve));
  return port;
}

/** Listens on `port` and relays every connection to `target`. */
async function relay(port: number, target: number): Promise<Server> {
  const server = createServer((client) => {
    const upstream = connect(target, "127.0.0.1");
    client.pipe(upstream).pipe(client);
    client.on("error", () => upstream.destroy());
    upstream.on("error", () => client.destroy());
  });
  await new Promise<void>((resolve) => server.listen(port, "127.0.0.1", resolve));
  return server;
}

const retries = (worker: TandemProcess) =>
  worker.stderr
    .filter((line) => line.startsWith("{"))
    .map((line) => JSON.parse(line) as { message: string; attempt?: number; retryInMs?: number })
    .filter((entry) => entry.message === "coordinator not reachable yet; retrying");

test("a worker started before its coordinator waits, retries with backoff, then registers", async (t) => {
  const tc = await startTestCoordinator({ database: "sqlite" });
  const dir = await mkdtemp(join(tmpdir(), "tandem-wait-"));
  const processes: TandemProcess[] = [];
  const servers: Server[] = [];
  t.after(async () => {
    await Promise.all(processes.map((p) => p.kill("SIGKILL")));
    for (const server of servers) server.close();
    await tc.close();
    await rm(dir, { recursive: true, force: true });
  });
  const supplier = await tc.signUp(["supplier"]);
  const { TANDEM_ENROLL_TOKEN } = await enrollmentEnv(tc.url, supplier.apiKey);
  const port = await freePort();

  const worker = spawnTandem([...ARGS, ...FLAGS], {
    TANDEM_HOME: join(dir, "worker"),
    TANDEM_URL: `http://127.0.0.1:${port}`,
    TANDEM_ENROLL_TOKEN,
  });
  processes.push(worker);
  const waited = await eventually(
    () => {
      if (worker.child.exitCode !== null)
        throw new Error(
          `the worker exited (${worker.child.exitCode}): ${worker.stderr.join("\n")}`,
        );
      return Promise.resolve(retries(worker).length >= 3 ? retries(worker) : undefined);
    },
    "three logged retries",
    60_000,
  );
  assert.equal(worker.child.exitCode, null, "still running while the coordinator is away");
  assert.deepEqual(
    waited.slice(0, 3).map((r) => r.attempt),
    [1, 2, 3],
  );
  const [first, , third] = waited.map((r) => r.retryInMs!);
  assert.ok(third! > first! * 2, `backoff grows: ${first} then ${third} ms`);

  servers.push(await relay(port, Number(new URL(tc.url).port)));
  const ids = JSON.parse(await worker.line(/^\{/, 60_000)) as { nodeId: string };
  assert.match(ids.nodeId, /^node_/);
  assert.equal((await tc.client().getNode(ids.nodeId)).region, "eu-west");
});

test("a refusal that cannot heal (a bad enrollment token) ends the worker at once", async (t) => {
  const tc = await startTestCoordinator({ database: "sqlite" });
  const dir = await mkdtemp(join(tmpdir(), "tandem-wait-"));
  t.after(async () => {
    await tc.close();
    await rm(dir, { recursive: true, force: true });
  });
  const worker = spawnTandem([...ARGS, ...FLAGS], {
    TANDEM_HOME: join(dir, "worker"),
    TANDEM_URL: tc.url,
    TANDEM_ENROLL_TOKEN: "not-a-token",
  });
  t.after(() => worker.kill("SIGKILL"));
  assert.equal(await worker.exited, 1);
  assert.deepEqual(retries(worker), []);
});
