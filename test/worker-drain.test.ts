/**
 * `tandem worker drain`, worker side, as a supplier runs it: a real `tandem worker start` process
 * serving a stand-in coordinator (test/support/stand-in-coordinator.ts) keeps its job while the
 * coordinator has not answered the drain, then stops like on SIGTERM (job ended, goodbye, exit 0,
 * pid file gone) once it answers `drained`. The end-to-end drain against the real coordinator
 * belongs with the coordinator's side of it.
 */
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { access, mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { after, describe, it } from "node:test";
import { pidFilePath } from "../src/worker/pid-file.ts";
import { processesWith, sleepersAtLeast } from "../src/worker/runtime/job-harness.ts";
import { eventually, spawnTandem, type TandemProcess } from "./support/processes.ts";
import {
  STANDIN_ENROLLMENT_TOKEN,
  startStandInCoordinator,
} from "./support/stand-in-coordinator.ts";

const cleanups: Array<() => Promise<unknown>> = [];
after(async () => {
  for (const cleanup of cleanups.reverse()) await cleanup();
});

async function tempHome(): Promise<string> {
  const dir = await mkdtemp(path.join(os.tmpdir(), "tandem-drain-"));
  cleanups.push(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

/** Runs `tandem worker drain --json` to its end: exit code and the JSON it printed. */
async function drainCommand(home: string, tandemHome: string, ...args: string[]) {
  const cli = spawnTandem(["worker", "drain", "--home", home, "--json", ...args], {
    TANDEM_HOME: tandemHome,
  });
  const code = await cli.exited;
  return { code, output: JSON.parse(cli.stdout.join("\n")) as Record<string, unknown> };
}

const exists = (p: string) =>
  access(p).then(
    () => true,
    () => false,
  );

describe("tandem worker drain", { timeout: 120_000 }, () => {
  it("drains a running worker: its job runs until the coordinator answers, then it stops cleanly", async () => {
    const coordinator = await startStandInCoordinator({
      heartbeatIntervalMs: 1000,
      fenceAfterMs: 2000,
      answerDrain: false,
    });
    cleanups.push(() => coordinator.close());
    const tandemHome = await tempHome();
    const home = path.join(tandemHome, "worker");
    const worker: TandemProcess = spawnTandem(
      ["worker", "start", "--region", "eu-west", "--zone", "eu-west-a", "--allow-unsandboxed"],
      {
        TANDEM_HOME: tandemHome,
        TANDEM_URL: coordinator.url,
        TANDEM_ENROLL_TOKEN: STANDIN_ENROLLMENT_TOKEN,
      },
    );
    cleanups.push(() => worker.kill("SIGKILL"));
    await worker.line(/serving node/);
    await coordinator.next("heartbeat");
    assert.equal(await exists(pidFilePath(home)), true);

    const mark = `1000.${process.pid}51`;
    coordinator.startJob(["sh", "-c", `echo ready; exec sleep ${mark}`]);
    await coordinator.next("job-log", (m) => m.lines.includes("ready"));

    // Nobody answers: the command gives up, the worker goes on draining with its job running.
    const late = await drainCommand(home, tandemHome, "--timeout", "1");
    assert.equal(late.code, 1);
    assert.equal((late.output.error as { code: string }).code, "DRAIN_TIMEOUT");
    assert.deepEqual(await coordinator.next("drain"), {
      type: "drain",
      reason: "drain requested by the supplier",
    });
    assert.equal(worker.child.exitCode, null);
    assert.equal((await sleepersAtLeast(mark, 1)).length, 1);

    // Asked again (the worker asks the coordinator again), and answered this time.
    const waiting = drainCommand(home, tandemHome);
    await eventually(
      () =>
        Promise.resolve(
          coordinator.received.filter((m) => m.type === "drain").length === 2 ? true : undefined,
        ),
      "the second drain",
    );
    coordinator.broadcast({ type: "drained" });
    const done = await waiting;
    assert.equal(done.code, 0);
    assert.equal(done.output.drained, true);
    assert.equal(done.output.pid, worker.child.pid);

    assert.equal(await worker.exited, 0);
    assert.equal(await exists(pidFilePath(home)), false);
    assert.deepEqual(await processesWith(`sleep\0${mark}\0`), []);
    const tail = coordinator.received.map((m) => m.type).filter((t) => t !== "heartbeat");
    assert.deepEqual(tail.slice(-2), ["job-exit", "bye"]);
    assert.deepEqual(await coordinator.next("bye"), { type: "bye", reason: "drained" });
  });

  it("says clearly when no worker runs from the home", async () => {
    const tandemHome = await tempHome();
    const home = path.join(tandemHome, "worker");

    const none = await drainCommand(home, tandemHome);
    assert.equal(none.code, 1);
    assert.equal((none.output.error as { code: string }).code, "WORKER_NOT_RUNNING");
    assert.match(
      (none.output.error as { message: string }).message,
      /no worker is running from .*worker\.pid does not exist/,
    );

    // A stale pid file naming a live process that is no worker: it must get no signal.
    const bystander = spawn("sleep", ["60"], { stdio: "ignore" });
    cleanups.push(() => Promise.resolve(bystander.kill("SIGKILL")));
    await rm(home, { recursive: true, force: true });
    await mkdir(home, { recursive: true });
    await writeFile(pidFilePath(home), `${bystander.pid}\n`);
    const stale = await drainCommand(home, tandemHome);
    assert.equal((stale.output.error as { code: string }).code, "WORKER_NOT_RUNNING");
    assert.match((stale.output.error as { message: string }).message, /not a tandem worker/);
    assert.equal(bystander.exitCode, null);
    assert.equal(bystander.signalCode, null);
  });
});
