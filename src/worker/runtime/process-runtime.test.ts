/**
 * The unsandboxed process runtime (`tandem dev` without bwrap) and the runtime selection. The
 * process runtime isolates nothing, by design; what it must still do is tested: only the job's
 * environment, its dir as cwd, exit codes, and no process left after kill or exit.
 */
import assert from "node:assert/strict";
import { chmod, mkdtemp, rm } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import {
  processesWith,
  runToEnd,
  sleepersAtLeast,
  tracking,
  waitForOutput,
  withDefaults,
  parseEnv,
} from "./job-harness.ts";
import { JobRuntimeError } from "./job-runtime.ts";
import { createProcessRuntime, PROCESS_RUNTIME_WARNING } from "./process-runtime.ts";
import { probeBwrap, selectRuntime } from "./select-runtime.ts";

const runtime = tracking(createProcessRuntime());
let tmp = "";
before(async () => {
  tmp = await mkdtemp(path.join(os.tmpdir(), "tandem-process-rt-"));
  await chmod(tmp, 0o711);
});
after(async () => {
  await runtime.killAll();
  await rm(tmp, { recursive: true, force: true });
});

const sh = (script: string): string[] => ["sh", "-c", script];

describe("process runtime", () => {
  it("says loudly that it does not sandbox", () => {
    assert.equal(runtime.kind, "process");
    assert.match(PROCESS_RUNTIME_WARNING, /WITHOUT A SANDBOX/);
    assert.match(PROCESS_RUNTIME_WARNING, /device key/);
  });

  it("gives the job only its own environment, its dir as cwd and HOME", async () => {
    process.env.TANDEM_RUNTIME_TEST_MARKER = "worker-environment-leaked";
    try {
      const dir = path.join(tmp, "env");
      const run = await runToEnd(runtime, { command: ["env"], env: { FOO: "bar" }, jobDir: dir });
      assert.equal(run.exit.exitCode, 0, run.stderr);
      const seen = parseEnv(run.stdout);
      assert.deepEqual(seen, {
        PATH: "/usr/local/bin:/usr/bin:/bin",
        HOME: dir,
        LANG: "C.UTF-8",
        FOO: "bar",
      });
      const cwd = await runToEnd(runtime, { command: ["pwd"], jobDir: dir });
      assert.equal(cwd.stdout, `${dir}\n`);
    } finally {
      delete process.env.TANDEM_RUNTIME_TEST_MARKER;
    }
  });

  it("propagates exit codes and signals", async () => {
    assert.equal(
      (await runToEnd(runtime, { command: sh("exit 9"), jobDir: path.join(tmp, "exit") })).exit
        .exitCode,
      9,
    );
    const killed = await runToEnd(runtime, {
      command: sh("kill -KILL $$"),
      jobDir: path.join(tmp, "sig"),
    });
    assert.deepEqual(killed.exit, { exitCode: null, signal: "SIGKILL", oomKilled: false });
  });

  it("kill ends the job and its children; exit leaves no background child", async () => {
    const mark = `1000.${process.pid}77`;
    const job = await runtime.run(
      withDefaults({
        command: sh(`for i in 1 2 3; do sleep ${mark} & done; echo ready; wait`),
        jobDir: path.join(tmp, "kill"),
      }),
    );
    await waitForOutput(job, "ready");
    job.stderr.resume();
    assert.equal((await sleepersAtLeast(mark, 3)).length, 3);
    await job.kill(1_000);
    assert.equal((await job.exited).signal, "SIGTERM");
    assert.deepEqual(await processesWith(mark), []);

    const mark2 = `1000.${process.pid}78`;
    const ended = await runToEnd(runtime, {
      command: sh(`sleep ${mark2} & echo done`),
      jobDir: path.join(tmp, "stray"),
    });
    assert.equal(ended.exit.exitCode, 0);
    assert.deepEqual(await processesWith(mark2), []);
  });

  it("applies limits the same way as the sandbox", async () => {
    const run = await runToEnd(runtime, {
      command: sh("ulimit -n"),
      jobDir: path.join(tmp, "nofile"),
      limits: { maxOpenFiles: 77 },
    });
    assert.equal(run.stdout, "77\n");
  });
});

describe("selectRuntime", () => {
  it("picks bwrap where it works", async (t) => {
    const reason = await probeBwrap();
    if (reason !== undefined) {
      t.skip(`bwrap is not usable here: ${reason}`);
      return;
    }
    const selected = await selectRuntime({ allowUnsandboxed: false });
    assert.equal(selected.runtime.kind, "bwrap");
    assert.equal(selected.warning, undefined);
  });

  it("refuses with RUNTIME_UNAVAILABLE when bwrap is unusable and unsandboxed jobs are not allowed", async () => {
    await assert.rejects(
      selectRuntime({ allowUnsandboxed: false, bwrap: "/nonexistent/bwrap" }),
      (error: unknown) =>
        error instanceof JobRuntimeError &&
        error.code === "RUNTIME_UNAVAILABLE" &&
        /install bubblewrap/i.test(error.message),
    );
  });

  it("falls back to the process runtime, with the warning, only when allowed", async () => {
    const selected = await selectRuntime({ allowUnsandboxed: true, bwrap: "/nonexistent/bwrap" });
    assert.equal(selected.runtime.kind, "process");
    assert.match(selected.warning ?? "", /WITHOUT A SANDBOX.*\/nonexistent\/bwrap/s);
  });
});
