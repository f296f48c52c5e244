/**
 * Job limits with the real bwrap, twice: as the runtime picks them on this host (cgroups where
 * writable) and with rlimits only (the fallback for hosts without writable cgroups). Each test
 * prints how the limit was enforced, and asserts the behaviour that enforcement promises.
 */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { chmod, mkdtemp, readFile, rm } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import { createBwrapRuntime } from "./bwrap-runtime.ts";
import { runToEnd, tracking, waitForOutput, withDefaults } from "./job-harness.ts";
import { jobCgroupName } from "./job-cgroup.ts";
import type { LimitEnforcement } from "./job-runtime.ts";

const PYTHON = "/usr/bin/python3";
const hasPython = spawnSync(PYTHON, ["-c", "pass"]).status === 0;
const asRoot = process.getuid?.() === 0;

let tmp = "";
before(async () => {
  tmp = await mkdtemp(path.join(os.tmpdir(), "tandem-limits-"));
  await chmod(tmp, 0o711);
});
after(async () => {
  await rm(tmp, { recursive: true, force: true });
});

/** Allocates and touches `mib` MiB, then prints "allocated". */
const allocate = (mib: number): string[] => [
  PYTHON,
  "-c",
  `b = b"x" * (${mib} << 20); print("allocated")`,
];

/** Forks up to 200 children that sleep, counting how many forks succeed. A fork bomb, bounded. */
const FORK_LOOP = [
  "import os, time",
  "n = 0",
  "for _ in range(200):",
  "    try:",
  "        pid = os.fork()",
  "    except OSError:",
  "        break",
  "    if pid == 0:",
  "        time.sleep(60)",
  "        os._exit(0)",
  "    n += 1",
  "print(n, flush=True)",
].join("\n");

for (const mode of ["auto", "rlimit"] as const) {
  describe(`bwrap limits (${mode})`, () => {
    const logs: string[] = [];
    const runtime = tracking(createBwrapRuntime({ limits: mode, log: (m) => logs.push(m) }));
    after(() => runtime.killAll());
    const dir = (name: string): string => path.join(tmp, `${mode}-${name}`);
    const say = (limit: string, how: LimitEnforcement | undefined): void => {
      console.log(`${mode}: ${limit} enforced by ${how ?? "nothing"}`);
    };

    it(
      "memory: a job allocating beyond its limit fails; one within it succeeds",
      { skip: !hasPython && "no python3" },
      async () => {
        const over = await runToEnd(runtime, {
          command: allocate(512),
          jobDir: dir("mem-over"),
          limits: { memoryMiB: 128 },
        });
        const within = await runToEnd(runtime, {
          command: allocate(16),
          jobDir: dir("mem-within"),
          limits: { memoryMiB: 128 },
        });
        const job = await runtime.run(
          withDefaults({ command: ["true"], jobDir: dir("mem-how"), limits: { memoryMiB: 128 } }),
        );
        const how = job.limitsEnforcedBy.memoryMiB;
        say("memoryMiB", how);
        assert.equal(within.exit.exitCode, 0, within.stderr);
        assert.equal(within.stdout, "allocated\n");
        assert.equal(over.stdout, "", "the over-limit allocation never completed");
        if (how === "cgroup-v1" || how === "cgroup-v2") {
          assert.deepEqual(over.exit, {
            exitCode: null,
            signal: "SIGKILL",
            oomKilled: true,
            limitExceeded: "memory",
          });
        } else {
          assert.equal(how, "rlimit");
          assert.equal(over.exit.exitCode, 1);
          assert.match(over.stderr, /MemoryError/);
        }
        assert.ok(
          logs.some((l) => l.includes("memoryMiB=")),
          "the worker log says how memory is limited",
        );
      },
    );

    it(
      "processes: a bounded fork bomb stops at the limit",
      { skip: !hasPython && "no python3" },
      async () => {
        const job = await runtime.run(
          withDefaults({
            command: [PYTHON, "-c", FORK_LOOP],
            jobDir: dir("pids"),
            limits: { maxProcesses: 32 },
          }),
        );
        const how = job.limitsEnforcedBy.maxProcesses;
        say("maxProcesses", how);
        job.stderr.resume();
        const forked = Number((await waitForOutput(job, "\n")).trim());
        await job.kill(0);
        if (how === "unenforced") {
          assert.ok(!asRoot, "only an unprivileged uid makes RLIMIT_NPROC count");
          return;
        }
        assert.ok(forked > 0, "some forks succeed");
        // The limit counts every task of the job: bwrap's monitor and reaper, python, its children.
        assert.ok(forked < 32, `${forked} forks succeeded under maxProcesses 32`);
      },
    );

    it(
      "processes: a fork bomb that fails on a refused fork ends with limitExceeded pids",
      { skip: !hasPython && "no python3" },
      async () => {
        const run = await runToEnd(runtime, {
          command: [PYTHON, "-c", `${FORK_LOOP}\nimport sys; sys.exit(0 if n == 200 else 1)`],
          jobDir: dir("pids-bomb"),
          limits: { maxProcesses: 32 },
        });
        const forked = Number(run.stdout.trim());
        assert.ok(forked > 0 && forked < 32, `${forked} forks succeeded under maxProcesses 32`);
        assert.equal(run.exit.exitCode, 1);
        if (mode === "auto" && asRoot) assert.equal(run.exit.limitExceeded, "pids");
      },
    );

    it("disk: one file past the limit is cut short and the job ends with limitExceeded disk", async () => {
      const run = await runToEnd(runtime, {
        command: ["sh", "-c", "head -c 67108864 /dev/zero > big"],
        jobDir: dir("disk-one"),
        limits: { diskMiB: 16 },
      });
      assert.notEqual(run.exit.exitCode, 0, "the 64 MiB file was not written whole");
      assert.equal(run.exit.limitExceeded, "disk");
    });

    it("disk: many small files past the limit are caught by the watcher, which ends the job", async () => {
      const job = await runtime.run(
        withDefaults({
          command: [
            "sh",
            "-c",
            "i=0; while [ $i -lt 64 ]; do head -c 1048576 /dev/zero > f$i; i=$((i+1)); done; echo filled; exec sleep 1000",
          ],
          jobDir: dir("disk-many"),
          limits: { diskMiB: 16 },
        }),
      );
      assert.equal(job.limitsEnforcedBy.diskMiB, "watcher");
      job.stderr.resume();
      job.stdout.resume();
      const exit = await job.exited;
      assert.equal(exit.signal, "SIGKILL");
      assert.equal(exit.limitExceeded, "disk");
    });

    it("disk: a job within its limit exits 0 with no limit exceeded", async () => {
      const run = await runToEnd(runtime, {
        command: ["sh", "-c", "head -c 4194304 /dev/zero > small && echo ok"],
        jobDir: dir("disk-within"),
        limits: { diskMiB: 16 },
      });
      assert.deepEqual(run.exit, { exitCode: 0, signal: null, oomKilled: false });
      assert.equal(run.stdout, "ok\n");
    });

    it("open files: the job's descriptor limit is the one asked for", async () => {
      const run = await runToEnd(runtime, {
        command: ["sh", "-c", "ulimit -n; ulimit -Hn"],
        jobDir: dir("nofile"),
        limits: { maxOpenFiles: 64 },
      });
      assert.equal(run.stdout, "64\n64\n");
    });

    it("cpu: the quota is set where a cgroup enforces it, and reported unenforced otherwise", async () => {
      const job = await runtime.run(
        withDefaults({
          jobId: `job_cpu_${mode}_${process.pid}`,
          command: ["sh", "-c", "echo ready; exec sleep 1000"],
          jobDir: dir("cpu"),
          limits: { cpuCores: 0.5 },
        }),
      );
      const how = job.limitsEnforcedBy.cpuCores;
      say("cpuCores", how);
      await waitForOutput(job, "ready");
      if (how === "cgroup-v1") {
        const own =
          /^\d+:(?:[^:]*,)?cpu(?:,[^:]*)?:(.*)$/m.exec(
            await readFile("/proc/self/cgroup", "utf8"),
          )?.[1] ?? "/";
        const base = path.join(
          "/sys/fs/cgroup/cpu",
          own,
          jobCgroupName(`job_cpu_${mode}_${process.pid}`),
        );
        assert.equal((await readFile(path.join(base, "cpu.cfs_quota_us"), "utf8")).trim(), "50000");
        assert.equal(
          (await readFile(path.join(base, "cpu.cfs_period_us"), "utf8")).trim(),
          "100000",
        );
      } else if (how === "cgroup-v2") {
        assert.ok(true, "cpu.max is written by the same code path (job-cgroup.ts)");
      } else {
        assert.equal(how, "unenforced", "there is no rlimit for CPU cores");
      }
      await job.kill(0);
    });
  });
}
