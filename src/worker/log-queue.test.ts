import assert from "node:assert/strict";
import { it } from "node:test";
import type { WorkerMessage } from "../protocol/worker-messages.ts";
import { LogQueue } from "./log-queue.ts";

type JobLog = Extract<WorkerMessage, { type: "job-log" }>;
const log = (rank: number, ...lines: string[]): JobLog => ({
  type: "job-log",
  clusterId: "clu_01JTEST",
  rank,
  attempt: 0,
  stream: "stdout",
  lines,
});
const drain = (queue: LogQueue) => {
  const out: string[] = [];
  for (let m = queue.shift(); m !== undefined; m = queue.shift())
    out.push(...m.lines.map((l) => `${m.rank}:${l}`));
  return out;
};

it("drops what does not fit, and notes it before the run's next message that fits", () => {
  const queue = new LogQueue(300);
  queue.push(log(0, "a".repeat(99), "b".repeat(99)));
  queue.push(log(0, "c".repeat(150)));
  queue.push(log(1, "d"));
  assert.equal(queue.queuedBytes, 202);
  assert.deepEqual(
    drain(queue).map((l) => l.slice(0, 3)),
    ["0:a", "0:b", "1:d"].concat(["0:["]),
  );
  assert.equal(queue.queuedBytes, 0);
  queue.push(log(0, "e"));
  assert.deepEqual(drain(queue), ["0:e"], "the note came once");
});

it("puts the note ahead of the run's next message when there is room", () => {
  const queue = new LogQueue(300);
  queue.push(log(0, "a".repeat(250)));
  queue.push(log(0, "b".repeat(100), "c"));
  queue.shift();
  queue.push(log(0, "d"));
  assert.deepEqual(drain(queue), [
    "0:[tandem] output truncated: 2 lines dropped while the link to the coordinator was slow or down",
    "0:d",
  ]);
});
