import assert from "node:assert/strict";
import { it } from "node:test";
import type { JobStartMessage, WorkerMessage } from "../../protocol/worker-messages.ts";
import { JobOutbox } from "./job-outbox.ts";

const clusterId = "clu_01jgfjjz00he2nkaqjaxxrd0f2";
const run = { clusterId, rank: 1, attempt: 2 };
const accepted = { type: "job-accepted", ...run, port: null } as const;
const exit = { type: "job-exit", ...run, exitCode: 0, signal: null, error: null } as const;
const start: JobStartMessage = {
  type: "job-start",
  ...run,
  worldSize: 2,
  kind: "batch",
  command: ["true"],
  env: {},
  image: null,
  head: { address: "127.0.0.1", port: 29_500 },
};

function outbox() {
  const sent: WorkerMessage[] = [];
  return { sent, box: new JobOutbox((m) => sent.push(m)) };
}

it("resends a live run's acceptance after a welcome, and its exit until acknowledged", () => {
  const { sent, box } = outbox();
  box.post(accepted);
  box.post({ type: "job-log", ...run, stream: "stdout", lines: ["hi"] });
  assert.equal(sent.length, 2, "everything goes out at once");
  sent.length = 0;
  box.resend();
  assert.deepEqual(sent, [accepted], "logs are not kept; the live run's acceptance is");

  box.post(exit);
  sent.length = 0;
  box.resend();
  assert.deepEqual(sent, [exit], "an ended run's exit replaces its acceptance");
  assert.equal(box.unacknowledgedExits, 1);

  box.acknowledged({ type: "job-exit-ack", ...run });
  sent.length = 0;
  box.resend();
  assert.deepEqual(sent, []);
  assert.equal(box.unacknowledgedExits, 0);
});

it("knows a run ended here until its exit is acknowledged (a resent start must not rerun it)", () => {
  const { box } = outbox();
  assert.equal(box.hasEnded(start), false);
  box.post(exit);
  assert.equal(box.hasEnded(start), true);
  assert.equal(box.hasEnded({ ...start, attempt: 3 }), false, "a newer attempt is a new run");
  box.acknowledged({ type: "job-exit-ack", ...run, attempt: 1 });
  assert.equal(box.hasEnded(start), true, "another attempt's ack leaves it");
  box.acknowledged({ type: "job-exit-ack", ...run });
  assert.equal(box.hasEnded(start), false);
});

it("marks the exits of runs stopped by self-fencing, and only those", () => {
  const { sent, box } = outbox();
  const other = { ...run, clusterId: "clu_01jgfjjz00tamrcwb3e0fx0yns" };
  box.post(accepted);
  box.fence("stopped by self-fencing: no contact with the coordinator for 4100 ms");
  box.post({ type: "job-accepted", ...other, port: null }); // started after the fence
  box.post({ ...exit, exitCode: null, signal: "SIGTERM" });
  box.post({ ...exit, ...other });
  assert.deepEqual(sent.slice(-2), [
    {
      ...exit,
      exitCode: null,
      signal: "SIGTERM",
      fenced: true,
      error: "stopped by self-fencing: no contact with the coordinator for 4100 ms",
    },
    { ...exit, ...other },
  ]);
});

it("sends an exit again once it has waited too long for its acknowledgement", () => {
  let now = 0;
  const sent: WorkerMessage[] = [];
  const box = new JobOutbox(
    (m) => sent.push(m),
    () => now,
  );
  box.post(exit);
  now = 14_999;
  box.resendOverdue(15_000);
  assert.equal(sent.length, 1, "not yet");
  now = 15_000;
  box.resendOverdue(15_000);
  assert.deepEqual(sent, [exit, exit]);
  now = 20_000;
  box.resendOverdue(15_000);
  assert.equal(sent.length, 2, "the clock restarts at each resend");
  box.acknowledged({ type: "job-exit-ack", ...run });
  now = 60_000;
  box.resendOverdue(15_000);
  assert.equal(sent.length, 2, "an acknowledged exit is never sent again");
});
