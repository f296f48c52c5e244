/**
 * A real worker machine enrolled with a token (issue 18 item 5): the supplier makes the token with
 * `tandem worker enroll-token` on its own machine; `tandem worker start` on the worker machine
 * gets only that token (from a file), registers, restarts by its device key alone, and leaves
 * neither the token nor any API key on disk or in its process. `tandem dev` does the same.
 */
import assert from "node:assert/strict";
import { mkdtemp, readdir, readFile, rm, stat } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, test } from "node:test";
import { TandemClient } from "../src/client/client.ts";
import { startTestCoordinator } from "./support/coordinator.ts";
import { eventually, spawnTandem, type TandemProcess } from "./support/processes.ts";

/** Every file under `dir` (recursively) whose bytes contain one of `secrets`. */
async function filesHolding(dir: string, secrets: readonly string[]): Promise<string[]> {
  const found: string[] = [];
  for (const entry of await readdir(dir, { recursive: true, withFileTypes: true })) {
    if (!entry.isFile()) continue;
    const path = join(entry.parentPath, entry.name);
    const bytes = await readFile(path);
    if (secrets.some((s) => bytes.includes(s))) found.push(path);
  }
  return found;
}

/** Whether a live process's command line or environment holds one of `secrets`. */
async function processHolds(pid: number, secrets: readonly string[]): Promise<boolean> {
  const seen = Buffer.concat([
    await readFile(`/proc/${pid}/cmdline`),
    await readFile(`/proc/${pid}/environ`),
  ]);
  return secrets.some((s) => seen.includes(s));
}

describe("worker enrollment, real processes", () => {
  test("a worker enrolls with a token file, restarts by its key, and holds no key or token", async (t) => {
    const tc = await startTestCoordinator({ database: "sqlite" });
    const dir = await mkdtemp(join(tmpdir(), "tandem-enroll-"));
    const processes: TandemProcess[] = [];
    t.after(async () => {
      await Promise.all(processes.map((p) => p.kill("SIGKILL")));
      await tc.close();
      await rm(dir, { recursive: true, force: true });
    });
    const supplier = await tc.signUp(["supplier"]);

    // The supplier's machine: its key makes a token, written to a file to carry over.
    const tokenFile = join(dir, "enroll.token");
    const enroll = spawnTandem(
      ["worker", "enroll-token", "--ttl", "30m", "--out", tokenFile, "--json"],
      {
        TANDEM_HOME: join(dir, "supplier"),
        TANDEM_URL: tc.url,
        TANDEM_API_KEY: supplier.apiKey,
      },
    );
    assert.equal(await enroll.exited, 0, enroll.stderr.join("\n"));
    const issued = JSON.parse(enroll.stdout.join("\n")) as { token: string; expiresAt: string };
    assert.equal((await readFile(tokenFile, "utf8")).trim(), issued.token);
    assert.equal((await stat(tokenFile)).mode & 0o777, 0o600);
    const secrets = [supplier.apiKey, issued.token];

    // The worker machine: only the coordinator's URL and the token file.
    const workerHome = join(dir, "worker-machine");
    const args = ["worker", "start", "--json", "--region", "eu-west", "--zone", "eu-west-a"];
    const start = (...extra: string[]) => {
      const worker = spawnTandem([...args, "--allow-unsandboxed", ...extra], {
        TANDEM_HOME: workerHome,
        TANDEM_URL: tc.url,
      });
      processes.push(worker);
      return worker;
    };
    const worker = start("--enroll-token-file", tokenFile);
    const ids = JSON.parse(await worker.line(/^\{/, 60_000)) as {
      deviceId: string;
      nodeId: string;
    };
    const anonymous = tc.client();
    await eventually(
      async () => ((await anonymous.getNode(ids.nodeId)).status === "available" ? true : undefined),
      "the enrolled worker's node to be verified and available",
    );
    assert.equal(await processHolds(worker.child.pid!, secrets), false, "the worker process");
    assert.deepEqual(await filesHolding(workerHome, secrets), []);

    // Restarted with no token at all, it re-registers by its device key: same device and node.
    assert.equal(await worker.kill("SIGTERM"), 0);
    const restarted = start();
    // Same device and node; its offer is measured again (the disk default is half the free
    // space, which moves between two starts), so only the ids are compared.
    const again = JSON.parse(await restarted.line(/^\{/, 60_000)) as typeof ids;
    assert.deepEqual([again.deviceId, again.nodeId], [ids.deviceId, ids.nodeId]);
    assert.deepEqual(await filesHolding(workerHome, secrets), []);
    const audit = await supplier.client.listEnrollmentTokens();
    assert.deepEqual(
      audit.items.map((i) => i.deviceId),
      [ids.deviceId],
    );

    // Another machine with the used token is refused, and says why.
    const second = spawnTandem([...args, "--enroll-token-file", tokenFile], {
      TANDEM_HOME: join(dir, "second-machine"),
      TANDEM_URL: tc.url,
    });
    processes.push(second);
    assert.equal(await second.exited, 1);
    assert.match(second.stdout.join("\n"), /"code":"ENROLLMENT_TOKEN_USED"/);
    // And a machine with no token is told how to get one.
    const bare = spawnTandem(args, { TANDEM_HOME: join(dir, "third-machine"), TANDEM_URL: tc.url });
    processes.push(bare);
    assert.equal(await bare.exited, 1);
    assert.match(bare.stdout.join("\n"), /"code":"NOT_ENROLLED"/);
  });

  test("tandem dev's workers enroll with tokens: no worker process or file holds the API key", async (t) => {
    const home = await mkdtemp(join(tmpdir(), "tandem-dev-enroll-"));
    const dev = spawnTandem(["dev", "--workers", "2", "--port", "0", "--json"], {
      TANDEM_HOME: home,
    });
    t.after(async () => {
      await dev.kill("SIGTERM");
      await rm(home, { recursive: true, force: true });
    });
    const summary = JSON.parse(await dev.line(/^\{/, 120_000)) as {
      url: string;
      apiKey: string;
      workers: Array<{ pid: number | null }>;
    };
    for (const { pid } of summary.workers)
      assert.equal(await processHolds(pid!, [summary.apiKey]), false, `worker ${pid}`);
    assert.deepEqual(await filesHolding(join(home, "dev", "workers"), [summary.apiKey]), []);
    const client = new TandemClient({ baseUrl: summary.url, apiKey: summary.apiKey });
    const tokens = await client.listEnrollmentTokens();
    assert.equal(tokens.items.filter((i) => i.deviceId !== null).length, 2);
  });
});
