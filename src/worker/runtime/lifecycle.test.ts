/**
 * A sandboxed job's life and end with the real bwrap: exit codes, kill with and without grace, and
 * no process left behind however the job ends. Processes are found by a marker in their command
 * line, on the host, through /proc.
 */
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { chmod, mkdtemp, readFile, rm } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import { fileURLToPath } from "node:url";
import { createBwrapRuntime } from "./bwrap-runtime.ts";
import {
  finish,
  processesWith,
  runToEnd,
  sleepersAtLeast,
  tracking,
  waitForOutput,
  withDefaults,
} from "./job-harness.ts";

const runtime = tracking(createBwrapRuntime());
let tmp = "";
before(async () => {
  tmp = await mkdtemp(path.join(os.tmpdir(), "tandem-lifecycle-"));
  await chmod(tmp, 0o711);
});
after(async () => {
  await runtime.killAll();
  await rm(tmp, { recursive: true, force: true });
});

const sh = (script: string): string[] => ["sh", "-c", script];
let markers = 0;
/** A `sleep` argument no other process on this host has: 1000.<pid><n> seconds. */
const marker = (): string => `1000.${process.pid}${++markers}`;

/** A job with three background sleeps, one in its own session, one orphaned; prints "ready". */
function familyScript(mark: string, prelude = ""): string[] {
  return sh(
    `${prelude}for i in 1 2 3; do sleep ${mark} & done; setsid sleep ${mark} & (sleep ${mark} &); echo ready; wait`,
  );
}

describe("bwrap runtime: exit", () => {
  it("propagates the command's exit code", async () => {
    for (const code of [0, 1, 7, 255]) {
      const run = await runToEnd(runtime, {
        command: sh(`exit ${code}`),
        jobDir: path.join(tmp, `exit-${code}`),
      });
      assert.deepEqual(run.exit, { exitCode: code, signal: null, oomKilled: false });
    }
  });

  it("reports a command killed by a signal inside the sandbox as 128+n, as bwrap does", async () => {
    const run = await runToEnd(runtime, {
      command: sh("kill -KILL $$"),
      jobDir: path.join(tmp, "self-kill"),
    });
    assert.deepEqual(run.exit, { exitCode: 137, signal: null, oomKilled: false });
  });

  it("streams stdout and stderr separately, even for a job that ends at once", async () => {
    const run = await runToEnd(runtime, {
      command: sh("echo out; echo err >&2"),
      jobDir: path.join(tmp, "streams"),
    });
    assert.equal(run.stdout, "out\n");
    assert.equal(run.stderr, "err\n");
  });

  it("leaves no process behind when the command exits with children still running", async () => {
    const mark = marker();
    const job = await runtime.run(
      withDefaults({
        command: sh(
          `sleep ${mark} & setsid sleep ${mark} & (sleep ${mark} &); sleep 0.01; echo started`,
        ),
        jobDir: path.join(tmp, "strays"),
      }),
    );
    const run = await finish(job);
    assert.equal(run.exit.exitCode, 0, run.stderr);
    assert.equal(run.stdout, "started\n");
    assert.deepEqual(await processesWith(mark), []);
  });
});

describe("bwrap runtime: kill", () => {
  it("ends the job and all its children, grandchildren and setsid escapees", async () => {
    const mark = marker();
    const job = await runtime.run(
      withDefaults({ command: familyScript(mark), jobDir: path.join(tmp, "kill") }),
    );
    await waitForOutput(job, "ready");
    job.stderr.resume();
    assert.equal((await sleepersAtLeast(mark, 5)).length, 5, "five sleeps run before the kill");
    await job.kill(2_000);
    assert.deepEqual(await job.exited, { exitCode: null, signal: "SIGTERM", oomKilled: false });
    assert.deepEqual(await processesWith(mark), [], "no process of the job is left");
  });

  it("lets a job clean up on SIGTERM within the grace period", async () => {
    const dir = path.join(tmp, "grace");
    const job = await runtime.run(
      withDefaults({
        command: sh(
          "trap 'echo cleaned > /job/cleanup; exit 0' TERM; echo ready; while :; do sleep 0.05; done",
        ),
        jobDir: dir,
      }),
    );
    await waitForOutput(job, "ready");
    job.stderr.resume();
    await job.kill(10_000);
    assert.deepEqual(await job.exited, { exitCode: 0, signal: null, oomKilled: false });
    assert.equal(await readFile(path.join(dir, "cleanup"), "utf8"), "cleaned\n");
  });

  it("SIGKILLs a job that ignores SIGTERM once the grace period is over", async () => {
    const mark = marker();
    const job = await runtime.run(
      withDefaults({
        command: familyScript(mark, "trap '' TERM; "),
        jobDir: path.join(tmp, "stubborn"),
      }),
    );
    await waitForOutput(job, "ready");
    job.stderr.resume();
    await job.kill(100);
    assert.deepEqual(await job.exited, { exitCode: null, signal: "SIGKILL", oomKilled: false });
    assert.deepEqual(await processesWith(mark), []);
  });

  it("kill(0) SIGKILLs at once; kill is idempotent and safe after the end", async () => {
    const mark = marker();
    const job = await runtime.run(
      withDefaults({ command: familyScript(mark), jobDir: path.join(tmp, "now") }),
    );
    await waitForOutput(job, "ready");
    job.stderr.resume();
    await Promise.all([job.kill(0), job.kill(0)]);
    await job.kill();
    assert.equal((await job.exited).signal, "SIGKILL");
    assert.deepEqual(await processesWith(mark), []);
  });

  it("ends every job when several run at once", async () => {
    const mark = marker();
    const jobs = await Promise.all(
      [1, 2, 3, 4].map((n) =>
        runtime.run(
          withDefaults({ command: familyScript(mark), jobDir: path.join(tmp, `many-${n}`) }),
        ),
      ),
    );
    await Promise.all(jobs.map((j) => waitForOutput(j, "ready")));
    assert.equal((await sleepersAtLeast(mark, 20)).length, 20);
    await Promise.all(jobs.map((j) => j.kill(0)));
    assert.deepEqual(await processesWith(mark), []);
  });
});

describe("bwrap runtime: the worker dies", () => {
  it("takes every job process down with a SIGKILLed worker (self-fencing)", async () => {
    const mark = marker();
    const fixture = fileURLToPath(
      new URL("../../../test/fixtures/runtime/hold-job.ts", import.meta.url),
    );
    const worker = spawn(
      process.execPath,
      ["--import", "tsx", fixture, path.join(tmp, "orphan"), mark],
      {
        stdio: ["ignore", "pipe", "inherit"],
      },
    );
    await new Promise<void>((resolve, reject) => {
      worker.stdout.on("data", (d: Buffer) => d.toString().includes("ready") && resolve());
      worker.once("exit", (code) =>
        reject(new Error(`the stand-in worker exited early (${code})`)),
      );
    });
    assert.equal((await sleepersAtLeast(mark, 2)).length, 2, "both sleepers of the job run");
    worker.kill("SIGKILL");
    // The kernel delivers the parent-death signals; wait (bounded) until it has.
    let left = await processesWith(mark);
    for (let i = 0; i < 500 && left.length > 0; i++) {
      await new Promise((r) => setTimeout(r, 20));
      left = await processesWith(mark);
    }
    assert.deepEqual(left, [], "no process of the job outlives its worker");
  });
});
