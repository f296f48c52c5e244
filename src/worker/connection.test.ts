/**
 * The coordinator link against a stand-in coordinator (test/support/stand-in-coordinator.ts; the
 * real gateway is tested beside it): self-fencing from WebSocket ping/pong, connected or not, and
 * the drain handshake. Timings keep the production ratio (fenceAfterMs = 2 heartbeat intervals,
 * the coordinator's deadline one interval later) at a scale a loaded machine still meets.
 */
import assert from "node:assert/strict";
import { mkdtemp, rm } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { after, describe, it } from "node:test";
import { fixtureHardware } from "../../test/support/devices.ts";
import { assertRevealChecksOut, cellsToOpen } from "../../test/support/proof-reveal.ts";
import {
  STANDIN_ENROLLMENT_TOKEN,
  startStandInCoordinator,
  type StandInCoordinator,
} from "../../test/support/stand-in-coordinator.ts";
import { IdPrefix, newId } from "../protocol/ids.ts";
import { CoordinatorLink, type FenceNotice } from "./connection.ts";
import { loadOrCreateIdentity } from "./identity.ts";
import { HardwareProver } from "./proof/hardware-prover.ts";
import { registerDevice } from "./registration.ts";

const FIXTURE_GPU_PROVER = fileURLToPath(
  new URL("../../test/fixtures/gpu-prover/gpu-prover", import.meta.url),
);
const HEARTBEAT_MS = 300;
const FENCE_AFTER_MS = 2 * HEARTBEAT_MS;
/** When the coordinator would declare the node dead: one interval after the fence. */
const DEAD_AFTER_MS = FENCE_AFTER_MS + HEARTBEAT_MS;

const cleanups: Array<() => Promise<void>> = [];
after(async () => {
  for (const cleanup of cleanups.reverse()) await cleanup();
});

/** A stand-in coordinator and a registered device's link to it (not started). */
async function linkToStandIn(publicAddress?: string): Promise<{
  coordinator: StandInCoordinator;
  link: CoordinatorLink;
}> {
  const coordinator = await startStandInCoordinator({
    heartbeatIntervalMs: HEARTBEAT_MS,
    fenceAfterMs: FENCE_AFTER_MS,
  });
  const home = await mkdtemp(path.join(os.tmpdir(), "tandem-link-"));
  const identity = await loadOrCreateIdentity(home);
  const { deviceId } = await registerDevice({
    coordinatorUrl: coordinator.url,
    credential: { enrollmentToken: STANDIN_ENROLLMENT_TOKEN },
    identity,
    region: "eu-west",
    zone: "eu-west-a",
    hardware: await fixtureHardware("none"),
  });
  const link = new CoordinatorLink({
    coordinatorUrls: [coordinator.url],
    identity: { ...identity, deviceId },
    backoff: { baseMs: 20, maxMs: 100 },
    sampleUtilization: () => ({ cpuPct: 0, memoryUsedMiB: 0, gpus: [] }),
    // The GPU prover helper is the fixture: a fake at the GPU port (no GPU on this machine).
    prover: new HardwareProver({ gpu: { command: FIXTURE_GPU_PROVER, isDefault: false } }),
    log: () => undefined,
    publicAddress,
  });
  cleanups.push(async () => {
    await link.stop("test over");
    await coordinator.close();
    await rm(home, { recursive: true, force: true });
  });
  return { coordinator, link };
}

/**
 * Every fence notice, with how long after the last ping the stand-in answered it came: the
 * coordinator's last sight of the node, from which it counts DEAD_AFTER_MS.
 */
function recordFences(link: CoordinatorLink, coordinator: StandInCoordinator) {
  const fences: Array<FenceNotice & { sinceSeenMs: number }> = [];
  const first = new Promise<void>((resolve) =>
    link.on("fence", (notice) => {
      const sinceSeenMs = performance.now() - (coordinator.lastPongAtMs ?? Number.NaN);
      fences.push({ ...notice, sinceSeenMs });
      resolve();
    }),
  );
  return { fences, first };
}

const connected = (link: CoordinatorLink) =>
  new Promise<{ fenceAfterMs: number }>((resolve) => link.once("connected", resolve));

describe("coordinator link: self-fencing", { timeout: 30_000 }, () => {
  it("does not fence while pongs come back; fences within the budget once they stop", async () => {
    const { coordinator, link } = await linkToStandIn();
    const { fences, first } = recordFences(link, coordinator);
    const welcome = connected(link);
    link.start();
    assert.equal((await welcome).fenceAfterMs, FENCE_AFTER_MS);

    // Four fencing budgets of silence would have fenced but for the pongs.
    await coordinator.pingsReach(1 + (4 * FENCE_AFTER_MS) / HEARTBEAT_MS);
    assert.equal(fences.length, 0);

    coordinator.answerPings = false;
    await first;
    const [fence] = fences;
    assert.ok(fence !== undefined);
    assert.ok(fence.silentMs >= FENCE_AFTER_MS, `fenced early: ${fence.silentMs} ms`);
    assert.ok(
      fence.sinceSeenMs < DEAD_AFTER_MS,
      `fenced ${fence.sinceSeenMs} ms after the last answered ping; the coordinator gives up after ${DEAD_AFTER_MS}`,
    );
    assert.deepEqual(
      { fenceAfterMs: fence.fenceAfterMs, heartbeatIntervalMs: fence.heartbeatIntervalMs },
      { fenceAfterMs: FENCE_AFTER_MS, heartbeatIntervalMs: HEARTBEAT_MS },
    );
  });

  it("keeps counting while the coordinator is unreachable; a new welcome makes contact fresh", async () => {
    const { coordinator, link } = await linkToStandIn();
    const { fences, first } = recordFences(link, coordinator);
    const welcome = connected(link);
    link.start();
    await welcome;

    coordinator.acceptConnections = false;
    coordinator.dropConnections();
    await first;
    assert.ok(fences[0]!.silentMs >= FENCE_AFTER_MS);
    assert.ok(fences[0]!.sinceSeenMs < DEAD_AFTER_MS);

    const back = connected(link);
    coordinator.acceptConnections = true;
    await back;
    const fencedBefore = fences.length;
    const pings = coordinator.pings;
    await coordinator.pingsReach(pings + (2 * FENCE_AFTER_MS) / HEARTBEAT_MS);
    assert.equal(fences.length, fencedBefore, "fenced again after a fresh welcome");
  });
});

describe("coordinator link: drain", { timeout: 30_000 }, () => {
  it("says in its auth the address it has on the link, or its --public-address", async () => {
    for (const [publicAddress, said] of [
      [undefined, "127.0.0.1"],
      ["203.0.113.7", "203.0.113.7"],
    ] as const) {
      const { coordinator, link } = await linkToStandIn(publicAddress);
      const up = connected(link);
      link.start();
      await up;
      const auth = coordinator.received.find((m) => m.type === "auth");
      assert.equal(auth?.type === "auth" && auth.localAddress, said);
    }
  });

  it("sends a drain asked for while down after the next welcome, and reports drained", async () => {
    const { coordinator, link } = await linkToStandIn();
    const drained = new Promise<void>((resolve) => link.once("drained", resolve));
    link.drain("drain requested by the supplier");
    link.start();
    await drained;
    const types = coordinator.received.map((m) => m.type);
    assert.ok(types.indexOf("auth") < types.indexOf("drain"));
    assert.deepEqual(await coordinator.next("drain"), {
      type: "drain",
      reason: "drain requested by the supplier",
    });
  });

  it("asks again after a reconnect until the coordinator answers", async () => {
    const { coordinator, link } = await linkToStandIn();
    coordinator.answerDrain = false;
    const welcome = connected(link);
    link.start();
    await welcome;
    link.drain("going away");
    await coordinator.next("drain");

    const drained = new Promise<void>((resolve) => link.once("drained", resolve));
    coordinator.answerDrain = true;
    coordinator.dropConnections();
    await drained;
    assert.equal(coordinator.received.filter((m) => m.type === "drain").length, 2);
  });
});

describe("coordinator link: job output", { timeout: 30_000 }, () => {
  it("sends control messages ahead of job output queued behind the socket", async () => {
    const { coordinator, link } = await linkToStandIn();
    const welcome = connected(link);
    link.start();
    await welcome;
    const clusterId = newId(IdPrefix.cluster);
    const run = { clusterId, rank: 0, attempt: 0 };
    const lines = Array.from({ length: 100 }, () => "x".repeat(400));
    // A coordinator that stops reading: the socket's buffers fill, the rest waits in the queue.
    coordinator.setReading(false);
    for (let i = 0; i < 150; i++)
      link.send({ type: "job-log", ...run, stream: "stdout", lines: [String(i), ...lines] });
    assert.ok(link.queuedLogBytes > 0, "job output waits in the link's queue");
    link.send({ type: "job-exit", ...run, exitCode: 0, signal: null, error: null });
    coordinator.setReading(true);
    await coordinator.next("job-log", (m) => m.lines[0] === "149");
    const order = coordinator.received.flatMap((m) =>
      m.type === "job-exit" ? ["exit"] : m.type === "job-log" ? [m.lines[0]] : [],
    );
    assert.deepEqual(
      order.filter((o) => o !== "exit"),
      Array.from({ length: 150 }, (_, i) => String(i)),
      "every batch arrives, in order",
    );
    assert.ok(order.indexOf("exit") < order.indexOf("149"), order.join(" "));
  });
});

describe("coordinator link: proof of hardware", { timeout: 60_000 }, () => {
  const devices = [
    { device: "cpu:0", kind: "cpu", seed: 1, n: 64, k: 1024, fillMiB: 0 },
    { device: "cpu:1", kind: "cpu", seed: 2, n: 64, k: 1024, fillMiB: 0 },
    // test/fixtures/nvidia-smi/h100x8's first GPU, proven by the fixture helper.
    {
      device: "GPU-a8fc067a-25ca-4385-b834-f75648392471",
      kind: "gpu",
      seed: 3,
      n: 256,
      k: 64,
      fillMiB: 4096,
    },
  ] as const;

  it("answers prove with one prove-commit and prove-open with cells that check out", async () => {
    const { coordinator, link } = await linkToStandIn();
    const up = connected(link);
    link.start();
    await up;
    coordinator.broadcast({ type: "prove", proofId: "proof-1", devices: [...devices] });
    const commit = await coordinator.next("prove-commit");
    assert.equal(commit.proofId, "proof-1");
    assert.deepEqual(
      commit.devices.map((d) => d.device),
      devices.map((d) => d.device),
    );
    const cells = cellsToOpen(devices);
    coordinator.broadcast({ type: "prove-open", proofId: "proof-1", cells });
    assertRevealChecksOut(devices, commit, await coordinator.next("prove-reveal"), cells.length);
  });

  it("drops a proof when its connection goes: an opening after a reconnect reveals nothing", async () => {
    const { coordinator, link } = await linkToStandIn();
    const up = connected(link);
    link.start();
    await up;
    coordinator.broadcast({ type: "prove", proofId: "proof-2", devices: [...devices] });
    await coordinator.next("prove-commit");
    const again = connected(link);
    coordinator.dropConnections();
    await again;
    coordinator.broadcast({ type: "prove-open", proofId: "proof-2", cells: cellsToOpen(devices) });
    assert.deepEqual(await coordinator.next("prove-reveal"), {
      type: "prove-reveal",
      proofId: "proof-2",
      cells: [],
    });
  });
});
