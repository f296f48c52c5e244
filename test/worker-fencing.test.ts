/**
 * Self-fencing of a whole worker (DESIGN.md §5.7), composed by src/worker/main.ts: it runs a real
 * job for a stand-in coordinator (test/support/stand-in-coordinator.ts), the coordinator falls
 * silent, and the worker ends the job's processes by itself before the coordinator could declare it
 * dead and give the rank to another node. And when the agent itself is frozen (SIGSTOP), with or
 * without its job, the fencing watchdog beside it ends the job all the same, before that deadline.
 * At the defaults the deadline is the soonest one: a closed connection's fencing bound.
 */
import assert from "node:assert/strict";
import { mkdtemp, rm } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { after, it } from "node:test";
import { CoordinatorConfig } from "../src/coordinator/config.ts";
import { FailureDetector } from "../src/core/failure-detector.ts";
import { startWorker } from "../src/worker/main.ts";
import { processesWith, sleepersAtLeast, tracking } from "../src/worker/runtime/job-harness.ts";
import { createProcessRuntime } from "../src/worker/runtime/process-runtime.ts";
import { fixtureHardware } from "./support/devices.ts";
import { spawnTandem } from "./support/processes.ts";
import {
  STANDIN_ENROLLMENT_TOKEN,
  startStandInCoordinator,
} from "./support/stand-in-coordinator.ts";

const HEARTBEAT_MS = 300;
const FENCE_AFTER_MS = 2 * HEARTBEAT_MS;

const runtime = tracking(createProcessRuntime());
const cleanups: Array<() => Promise<void>> = [];
after(async () => {
  for (const cleanup of cleanups.reverse()) await cleanup();
  await runtime.killAll();
});

it(
  "a worker that loses its coordinator stops its jobs by itself",
  { timeout: 30_000 },
  async () => {
    const coordinator = await startStandInCoordinator({
      heartbeatIntervalMs: HEARTBEAT_MS,
      fenceAfterMs: FENCE_AFTER_MS,
    });
    const home = await mkdtemp(path.join(os.tmpdir(), "tandem-fencing-"));
    cleanups.push(async () => {
      await coordinator.close();
      await rm(home, { recursive: true, force: true });
    });
    const logs: string[] = [];
    const fenced = new Promise<string>((resolve) => {
      const worker = startWorker(
        {
          home,
          coordinatorUrl: coordinator.url,
          enrollmentToken: STANDIN_ENROLLMENT_TOKEN,
          region: "eu-west",
          zone: "eu-west-a",
          jobsDir: path.join(home, "jobs"),
        },
        {
          probe: { probe: () => fixtureHardware("none") },
          runtime,
          log: (message) => {
            logs.push(message);
            if (message.startsWith("fenced:")) resolve(message);
          },
        },
      );
      cleanups.push(async () => (await worker).stop());
    });

    await coordinator.next("heartbeat");
    const mark = `1000.${process.pid}91`;
    const clusterId = coordinator.startJob(
      ["sh", "-c", `echo ready; sleep ${mark} & sleep ${mark} & wait`],
      2,
    );
    await coordinator.next("job-log", (m) => m.lines.includes("ready"));
    assert.equal((await sleepersAtLeast(mark, 2)).length, 2);

    coordinator.answerPings = false;
    assert.match(
      await fenced,
      /^fenced: no contact with the coordinator for \d+ ms; stopped 1 jobs$/,
    );
    assert.deepEqual(await processesWith(`sleep\0${mark}\0`), []);
    const exit = await coordinator.next("job-exit", (m) => m.clusterId === clusterId);
    assert.equal(exit.attempt, 2);
    assert.equal(exit.signal, "SIGTERM");
    assert.equal(logs.filter((l) => l.startsWith("fenced:")).length, 1);
  },
);

for (const frozen of ["nothing (its link is cut)", "the agent", "the agent and its job"] as const) {
  it(
    `a worker's job ends before the soonest the coordinator may move it: ${frozen} stopped`,
    { timeout: 60_000 },
    async () => {
      // The defaults, and the soonest a node is declared dead: when its connection closed (a
      // reset that reaches the coordinator only), the fencing bound after its last beat.
      const detector = new FailureDetector({
        clock: { now: () => 0 },
        heartbeatIntervalMs: CoordinatorConfig.shape.heartbeatIntervalMs.parse(undefined),
        missedHeartbeats: CoordinatorConfig.shape.missedHeartbeats.parse(undefined),
      });
      const deadlineMs = detector.fencedBoundMs;
      const coordinator = await startStandInCoordinator({
        heartbeatIntervalMs: CoordinatorConfig.shape.heartbeatIntervalMs.parse(undefined),
        fenceAfterMs: detector.fenceAfterMs,
      });
      const tandemHome = await mkdtemp(path.join(os.tmpdir(), "tandem-frozen-"));
      const worker = spawnTandem(
        ["worker", "start", "--region", "eu-west", "--zone", "eu-west-a", "--allow-unsandboxed"],
        {
          TANDEM_HOME: tandemHome,
          TANDEM_URL: coordinator.url,
          TANDEM_ENROLL_TOKEN: STANDIN_ENROLLMENT_TOKEN,
        },
      );
      cleanups.push(async () => {
        worker.child.kill("SIGCONT");
        await worker.kill("SIGKILL");
        await coordinator.close();
        await rm(tandemHome, { recursive: true, force: true });
      });
      await worker.line(/serving node/);
      await coordinator.next("heartbeat");
      const mark = `1000.${process.pid}${frozen.length}`;
      coordinator.startJob(["sh", "-c", `echo ready; exec sleep ${mark}`]);
      await coordinator.next("job-log", (m) => m.lines.includes("ready"));
      const [sleeper] = await sleepersAtLeast(mark, 1);
      assert.ok(sleeper !== undefined);

      // Cut its link (no more pongs: the agent fences itself), or freeze it: no more heartbeats,
      // and an agent that cannot fence itself.
      if (frozen === "nothing (its link is cut)") coordinator.answerPings = false;
      else worker.child.kill("SIGSTOP");
      if (frozen === "the agent and its job") process.kill(sleeper, "SIGSTOP");
      const frozenAtMs = performance.now();
      let goneAtMs: number | undefined;
      while (performance.now() - frozenAtMs < 2 * deadlineMs) {
        if ((await processesWith(`sleep\0${mark}\0`)).length === 0) {
          goneAtMs = performance.now();
          break;
        }
        await new Promise((r) => setTimeout(r, 20));
      }
      assert.ok(goneAtMs !== undefined, "the job outlived its frozen agent");
      const lastSeenMs = coordinator.lastPongAtMs ?? frozenAtMs;
      assert.ok(
        goneAtMs < lastSeenMs + deadlineMs,
        `gone ${Math.round(goneAtMs - lastSeenMs)} ms after the last beat (deadline ${deadlineMs})`,
      );
    },
  );
}
