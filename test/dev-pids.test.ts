// `tandem dev` prints each local worker's PID (issue 20): the README tells users to `kill -9 <pid>`
// one and watch its node go offline. A real dev network, its worker a real child process.
import assert from "node:assert/strict";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { eventually, spawnTandem } from "./support/processes.ts";

test("tandem dev prints each worker's pid, and killing it ends that worker", async (t) => {
  const home = await mkdtemp(join(tmpdir(), "tandem-dev-pids-"));
  const dev = spawnTandem(["dev", "--workers", "2", "--port", "0"], { TANDEM_HOME: home });
  t.after(async () => {
    await dev.kill("SIGTERM");
    await rm(home, { recursive: true, force: true });
  });
  await dev.line(/^Ctrl-C stops everything/, 120_000);
  const out = dev.stdout.join("\n");
  const first = /\n {2}workers: {4}w1 \(eu-west-a\) pid (\d+)\n/.exec(out);
  const second = /\n {14}w2 \(eu-west-b\) pid (\d+)\n/.exec(out);
  assert.ok(first !== null && second !== null, out);
  const pid = Number(first[1]);
  const cmdline = (await readFile(`/proc/${pid}/cmdline`, "utf8")).split("\0");
  assert.deepEqual(cmdline.slice(cmdline.indexOf("worker"), cmdline.indexOf("worker") + 2), [
    "worker",
    "start",
  ]);
  assert.ok(cmdline.includes(join(home, "dev", "workers", "w1")), "the pid is w1's worker");
  process.kill(pid, "SIGKILL");
  await eventually(
    () => Promise.resolve(dev.stderr.find((l) => l === "[w1] worker exited (SIGKILL)")),
    "the dev network to see w1 killed",
  );
});
