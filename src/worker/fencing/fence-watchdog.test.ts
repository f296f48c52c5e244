import assert from "node:assert/strict";
import { after, describe, it } from "node:test";
import { setTimeout as delay } from "node:timers/promises";
import { isLive } from "../runtime/processes.ts";
import { createProcessRuntime } from "../runtime/process-runtime.ts";
import { processesWith, sleepersAtLeast, tracking, withDefaults } from "../runtime/job-harness.ts";
import { startFenceWatchdog, type FenceWatchdog } from "./fence-watchdog.ts";
import { mkdtemp, rm } from "node:fs/promises";
import os from "node:os";
import path from "node:path";

const runtime = tracking(createProcessRuntime());
const cleanups: Array<() => Promise<unknown>> = [];
after(async () => {
  for (const cleanup of cleanups.reverse()) await cleanup();
  await runtime.killAll();
});

async function setUp(): Promise<{ watchdog: FenceWatchdog; jobDir: string; fenced: string[][] }> {
  const watchdog = startFenceWatchdog(() => undefined);
  cleanups.push(() => watchdog.stop());
  const dir = await mkdtemp(path.join(os.tmpdir(), "tandem-watchdog-"));
  cleanups.push(() => rm(dir, { recursive: true, force: true }));
  const fenced: string[][] = [];
  watchdog.onFenced((ids) => fenced.push(ids));
  return { watchdog, jobDir: path.join(dir, "job"), fenced };
}

/** Waits (up to 10 s) until none of `pids` is alive. */
async function allGone(pids: number[]): Promise<boolean> {
  for (let i = 0; i < 500; i++) {
    const alive = await Promise.all(pids.map(isLive));
    if (!alive.includes(true)) return true;
    await delay(20);
  }
  return false;
}

describe("fencing watchdog", { timeout: 60_000 }, () => {
  it("keeps a job while renewed, and kills its whole process tree once renewals stop", async () => {
    const { watchdog, jobDir, fenced } = await setUp();
    const guarded = watchdog.guard(runtime);
    const mark = `1000.${process.pid}71`;
    const job = await guarded.run(
      withDefaults({
        jobId: "job_watchdog_renewed",
        command: ["sh", "-c", `sleep ${mark} & sleep ${mark} & wait`],
        jobDir,
      }),
    );
    const sleepers = await sleepersAtLeast(mark, 2);
    assert.equal(sleepers.length, 2);

    // Renewed with a 300 ms fence every 50 ms, for over a second: nothing is killed.
    for (let i = 0; i < 25; i++) {
      watchdog.renew(300);
      await delay(50);
    }
    assert.deepEqual(await Promise.all([job.pid, ...sleepers].map(isLive)), [true, true, true]);
    assert.deepEqual(fenced, []);

    // The agent stops renewing (as a frozen agent would): the watchdog ends the job.
    assert.equal(await allGone([job.pid, ...sleepers]), true);
    const exit = await job.exited;
    assert.equal(exit.signal, "SIGKILL");
    assert.deepEqual(fenced, [["job_watchdog_renewed"]]);
  });

  it("forgets a job that ended, and kills what it still watches when the agent goes", async () => {
    const { watchdog, jobDir } = await setUp();
    const guarded = watchdog.guard(runtime);
    watchdog.renew(60_000);
    const short = await guarded.run(withDefaults({ command: ["true"], jobDir }));
    assert.equal((await short.exited).exitCode, 0);
    const mark = `1000.${process.pid}72`;
    const long = await guarded.run(
      withDefaults({ command: ["sh", "-c", `exec sleep ${mark}`], jobDir: `${jobDir}-2` }),
    );
    const [sleeper] = await sleepersAtLeast(mark, 1);
    // The agent's end closes the watchdog's input: nobody is left to fence, so the job ends.
    await watchdog.stop();
    assert.equal(await allGone([sleeper!]), true);
    assert.equal((await long.exited).signal, "SIGKILL");
  });

  it("starts another watchdog when one dies, which still fences the jobs the first watched", async () => {
    const watchdogs = () => processesWith("watchdog-process.ts");
    const others = new Set(await watchdogs());
    const { watchdog, jobDir, fenced } = await setUp();
    const guarded = watchdog.guard(runtime);
    watchdog.renew(60_000);
    const mark = `1000.${process.pid}73`;
    const job = await guarded.run(
      withDefaults({
        jobId: "job_watchdog_respawned",
        command: ["sh", "-c", `exec sleep ${mark}`],
        jobDir,
      }),
    );
    const [sleeper] = await sleepersAtLeast(mark, 1);
    const [first] = (await watchdogs()).filter((pid) => !others.has(pid));
    assert.ok(first !== undefined && sleeper !== undefined);
    process.kill(first, "SIGKILL");
    let second: number | undefined;
    for (let i = 0; i < 500 && second === undefined; i++) {
      await delay(20);
      second = (await watchdogs()).find((pid) => pid !== first && !others.has(pid));
    }
    assert.ok(second !== undefined, "a new watchdog started");
    assert.equal(await isLive(sleeper), true, "the job outlived the old watchdog");
    // The agent renews the new one once (as its next fence check would), then stops renewing.
    watchdog.renew(300);
    assert.equal(await allGone([sleeper]), true);
    assert.equal((await job.exited).signal, "SIGKILL");
    assert.deepEqual(fenced, [["job_watchdog_respawned"]]);
  });
});
