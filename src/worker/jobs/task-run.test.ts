/**
 * Task runs (issue 20) with real processes, in the real bubblewrap sandbox and in the process
 * runtime: the tasks of one `job-start` run in order, each its own process with its own argv
 * (quotes and all) and `TANDEM_TASK`; each one's exit comes back in the run's `job-exit`, a task
 * that fails does not stop the next, and every line of output is relayed.
 */
import assert from "node:assert/strict";
import { chmod, mkdtemp, rm } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import { IdPrefix, newId } from "../../protocol/ids.ts";
import type { JobStartMessage, WorkerMessage } from "../../protocol/worker-messages.ts";
import { createBwrapRuntime } from "../runtime/bwrap-runtime.ts";
import type { JobRuntime } from "../runtime/job-runtime.ts";
import { createProcessRuntime } from "../runtime/process-runtime.ts";
import { DEFAULT_OUTPUT_LIMITS } from "./rank-output.ts";
import { JobSupervisor } from "./supervisor.ts";

let jobsDir = "";
before(async () => {
  jobsDir = await mkdtemp(path.join(os.tmpdir(), "tandem-task-run-"));
  await chmod(jobsDir, 0o711);
});
after(() => rm(jobsDir, { recursive: true, force: true }));

/** Runs `start` to its end on `runtime`; every message the supervisor sent. */
async function run(runtime: JobRuntime, start: JobStartMessage): Promise<WorkerMessage[]> {
  const sent: WorkerMessage[] = [];
  const offer = { memoryMiB: 1024, cpuCores: 1, pids: 256, diskMiB: 256 };
  const send = (message: WorkerMessage) => void sent.push(message);
  const supervisor = new JobSupervisor({ ...NO_GPUS, runtime, jobsDir, offer, send });
  await supervisor.start(start);
  return sent;
}

const NO_GPUS = {
  python: "/usr/bin/python3",
  gpuIndices: [],
  output: DEFAULT_OUTPUT_LIMITS,
  log: () => undefined,
};

function taskRun(tasks: Array<{ seq: number; command: string[] }>): JobStartMessage {
  return {
    type: "job-start",
    clusterId: newId(IdPrefix.cluster),
    rank: 0,
    attempt: tasks[0]!.seq,
    worldSize: 1,
    kind: "batch",
    command: tasks[0]!.command,
    env: { GREETING: "hello" },
    image: null,
    head: null,
    tasks,
  };
}

for (const [name, runtime] of [
  ["bwrap", () => createBwrapRuntime()],
  ["process", () => createProcessRuntime()],
] as const) {
  describe(`task runs (${name} runtime)`, () => {
    it("runs each task in order as its own process and reports each one's exit", async () => {
      const start = taskRun([
        { seq: 7, command: ["sh", "-c", 'echo "task $TANDEM_TASK says $GREETING"; exit 3'] },
        { seq: 8, command: ["printf", "%s|%s\\n", "it's", "two words"] },
        { seq: 10, command: ["sh", "-c", "kill -9 $$"] },
        { seq: 11, command: ["no-such-command-here"] },
        { seq: 12, command: ["sh", "-c", "echo done $TANDEM_TASK"] },
      ]);
      const sent = await run(runtime(), start);
      const exit = sent.find((m) => m.type === "job-exit");
      assert.ok(exit !== undefined && exit.type === "job-exit");
      assert.equal(exit.attempt, 7);
      assert.deepEqual(exit.taskExits, [
        { seq: 7, exitCode: 3 },
        { seq: 8, exitCode: 0 },
        { seq: 10, exitCode: 137 },
        { seq: 11, exitCode: 127 },
        { seq: 12, exitCode: 0 },
      ]);
      const stdout = sent.flatMap((m) =>
        m.type === "job-log" && m.stream === "stdout" ? m.lines : [],
      );
      assert.deepEqual(stdout, ["task 7 says hello", "it's|two words", "done 12"]);
      assert.equal(sent.filter((m) => m.type === "job-accepted").length, 1, "one sandbox start");
    });
  });
}
