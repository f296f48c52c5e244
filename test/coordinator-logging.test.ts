/**
 * A coordinator's log at the default level has no line per request (issue 20): a service answering
 * thousands of requests a second would log little else. `--log-level debug` brings one line per
 * answered request back. A real `tandem coordinator` process, its stdout read whole after it stops.
 */
import assert from "node:assert/strict";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { spawnTandem } from "./support/processes.ts";

/** Runs a coordinator with `flags`, asks three routes (one unknown), stops it: its log lines. */
async function logOf(t: { after(fn: () => Promise<void>): void }, flags: string[]) {
  const home = await mkdtemp(join(tmpdir(), "tandem-log-"));
  t.after(() => rm(home, { recursive: true, force: true }));
  const run = spawnTandem(["coordinator", "--port", "0", "--json", ...flags], {
    TANDEM_HOME: home,
  });
  t.after(async () => void (await run.kill("SIGKILL")));
  const { url } = JSON.parse(await run.line(/^\{"url"/)) as { url: string };
  for (const path of ["/v1/health", "/v1/nodes", "/v1/no-such-route"])
    await (await fetch(`${url}${path}`)).arrayBuffer();
  assert.equal(await run.kill("SIGTERM"), 0);
  return run.stdout
    .filter((line) => line.startsWith('{"level"'))
    .map((line) => JSON.parse(line) as { level: number; msg: string; url?: string });
}

test("the default level logs the start, not each request", async (t) => {
  const log = await logOf(t, []);
  assert.ok(
    log.some((l) => l.msg === "coordinator listening"),
    JSON.stringify(log),
  );
  assert.deepEqual(
    log.filter((l) => l.url !== undefined || /request/.test(l.msg)),
    [],
  );
});

test("--log-level debug logs each answered request at debug", async (t) => {
  const log = await logOf(t, ["--log-level", "debug"]);
  const requests = log.filter((l) => l.msg === "request completed");
  assert.deepEqual(
    requests.map((l) => [l.level, l.url]),
    [
      [20, "/v1/health"],
      [20, "/v1/nodes"],
      [20, "/v1/no-such-route"],
    ],
  );
});
