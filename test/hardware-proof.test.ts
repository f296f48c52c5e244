/**
 * The proof of hardware, coordinator side, on SQLite and PostgreSQL, over real worker sockets:
 * an honest 8×H100 node and a CPU node become available with their proof in the node's public
 * history; each bad answer of issue 15 is recorded with its verdict and leaves the node unrentable,
 * the gateway serving on. The GPU answers come from the test prover (test/support/prover.ts): a
 * fake at the GPU port (no GPU exists here) that computes on the CPU and reports the time the card
 * it plays would take. A manual clock makes the coordinator's own timing exact.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { GPU_CATALOG } from "../src/core/gpu-catalog.ts";
import type { HistoryEntry } from "../src/protocol/nodes.ts";
import type { ProofRecord } from "../src/coordinator/verification/proof-session.ts";
import { SMALL_PROOF_POLICY } from "../src/coordinator/config.ts";
import {
  ManualClock,
  forEachDatabase,
  type DatabaseUnderTest,
  type TestCoordinator,
} from "./support/coordinator.ts";
import {
  connectWorker,
  fixtureHardware,
  heartbeat,
  newDeviceKey,
  signedRegistration,
  type GpuFixture,
  type WorkerSocket,
} from "./support/devices.ts";
import { eventually } from "./support/processes.ts";
import { FixtureProver, nextOpen, nextProve, proveHonestly } from "./support/prover.ts";

const H100 = GPU_CATALOG.find((m) => m.id === "h100-80gb")!;
/** What an honest H100 shows: 80 % of its tensor peak. */
const HONEST_H100_TFLOPS = 0.8 * H100.tensorTflops;

async function network(db: DatabaseUnderTest, t: { after(fn: () => Promise<void>): void }) {
  const clock = new ManualClock();
  const tc = await db.startCoordinator({ clock, config: { livenessSweepMs: 0 } });
  t.after(() => tc.close());
  const supplier = await tc.signUp(["supplier"]);
  return { tc, clock, supplier };
}

/** A registered node of `fixture`'s hardware, connected: the coordinator's `prove` is next. */
async function node(
  tc: TestCoordinator,
  apiKey: string,
  fixture: GpuFixture,
): Promise<
  WorkerSocket & {
    nodeId: string;
    reconnect(): Promise<WorkerSocket>;
    /** Registers the same device again with `fixture`'s hardware. */
    reregister(fixture: GpuFixture): Promise<void>;
  }
> {
  const device = newDeviceKey();
  const registered = await tc.client(apiKey).registerDevice(
    signedRegistration(device, {
      region: "eu-west",
      zone: "eu-west-a",
      hardware: await fixtureHardware(fixture),
    }),
  );
  const reconnect = () => connectWorker(tc.url, registered.deviceId, device.privateKey);
  const reregister = async (other: GpuFixture) => {
    await tc.client(apiKey).registerDevice(
      signedRegistration(device, {
        region: "eu-west",
        zone: "eu-west-a",
        hardware: await fixtureHardware(other),
      }),
    );
  };
  const worker = await connectWorker(tc.url, registered.deviceId, device.privateKey);
  return { ...worker, reconnect, reregister };
}

/** The node's proof row (waited for) and its record. */
async function proofOf(
  tc: TestCoordinator,
  nodeId: string,
): Promise<{ entry: HistoryEntry; record: ProofRecord }> {
  const entry = await eventually(async () => {
    const { items } = await tc.client().nodeHistory(nodeId);
    return items.find((i) => i.action.startsWith("verification-"));
  }, "the proof's history row");
  return { entry, record: entry.detail as unknown as ProofRecord };
}

async function viewOf(tc: TestCoordinator, nodeId: string) {
  return tc.client().getNode(nodeId);
}

/** The node failed with `verdict` on some device, is unrentable, and the gateway still serves. */
async function assertFailed(
  tc: TestCoordinator,
  worker: WorkerSocket & { nodeId: string },
  verdict: string,
): Promise<ProofRecord> {
  const { nodeId } = worker;
  const { entry, record } = await proofOf(tc, nodeId);
  assert.equal(entry.action, "verification-failed");
  assert.ok(
    record.devices.some((d) => d.verdict === verdict),
    `${verdict} in ${JSON.stringify(record)}`,
  );
  assert.equal((await viewOf(tc, nodeId)).status, "unverified");
  assert.equal((await tc.client().health()).status, "ok");
  assert.equal(worker.socket.readyState, worker.socket.OPEN);
  return record;
}

forEachDatabase("proof of hardware", (db) => {
  test("an honest 8×H100 node is proven on each GPU and becomes available", async (t) => {
    const { tc, clock, supplier } = await network(db, t);
    const worker = await node(tc, supplier.apiKey, "h100x8");
    await proveHonestly(worker, HONEST_H100_TFLOPS, () => clock.advance(1));
    const { entry, record } = await proofOf(tc, worker.nodeId);
    assert.equal(entry.action, "verification-passed");
    assert.equal(record.reason, "proven as h100-80gb ×8");
    const uuids = (await fixtureHardware("h100x8")).gpus.map((g) => g.uuid);
    assert.deepEqual(
      record.devices.map((d) => d.device),
      uuids,
    );
    for (const d of record.devices) {
      assert.equal(d.kind, "gpu");
      assert.equal(d.verdict, "passed", d.detail);
      assert.equal(d.claimedModel, "h100-80gb");
      assert.equal(d.provenModel, "h100-80gb");
      assert.equal(d.elapsedMs, 1);
      assert.equal(d.fillMiB, Math.floor(H100.vramMiB / 2));
      assert.ok(Math.abs(d.tflops! - HONEST_H100_TFLOPS) < 1, String(d.tflops));
    }
    const view = await viewOf(tc, worker.nodeId);
    assert.equal(view.status, "available");
    assert.equal(view.gpuModel, "h100-80gb");
  });

  test("a CPU node is proven on each core and becomes available", async (t) => {
    const { tc, supplier } = await network(db, t);
    const worker = await node(tc, supplier.apiKey, "none");
    await proveHonestly(worker);
    const { entry, record } = await proofOf(tc, worker.nodeId);
    assert.equal(entry.action, "verification-passed");
    const cores = (await fixtureHardware("none")).cpu.cores;
    assert.equal(record.reason, `proven as ${cores} CPU cores`);
    assert.deepEqual(
      record.devices.map((d) => [d.device, d.kind, d.verdict, d.n, d.k]),
      Array.from({ length: cores }, (_, i) => [`cpu:${i}`, "cpu", "passed", 16, 512]),
    );
    assert.equal((await viewOf(tc, worker.nodeId)).status, "available");
  });

  test("a card slower than its claim is rented as the model it proved, or not at all", async (t) => {
    const { tc, clock, supplier } = await network(db, t);
    const a100 = GPU_CATALOG.find((m) => m.id === "a100-80gb")!;
    const lower = await node(tc, supplier.apiKey, "h100x8");
    await proveHonestly(lower, 0.8 * a100.tensorTflops, () => clock.advance(1));
    const { entry, record } = await proofOf(tc, lower.nodeId);
    assert.equal(entry.action, "verification-passed");
    assert.equal(record.reason, "proven as a100-80gb ×8 (claimed h100-80gb)");
    assert.ok(record.devices.every((d) => d.provenModel === "a100-80gb" && d.verdict === "passed"));
    assert.match(record.devices[0]!.detail, /not the claimed h100-80gb/);
    const view = await viewOf(tc, lower.nodeId);
    assert.equal(view.status, "available");
    assert.equal(view.gpuModel, "a100-80gb");
    // Searched and priced as what it proved.
    const asA100 = await tc.client().listNodes({ gpuModel: "a100-80gb" });
    assert.deepEqual(
      asA100.items.map((n) => n.id),
      [lower.nodeId],
    );
    assert.equal((await tc.client().listNodes({ gpuModel: "h100-80gb" })).items.length, 0);
    const honest = await node(tc, supplier.apiKey, "h100x8");
    await proveHonestly(honest, HONEST_H100_TFLOPS, () => clock.advance(1));
    await proofOf(tc, honest.nodeId);
    const honestPrice = Number((await viewOf(tc, honest.nodeId)).pricePerHourUsd);
    assert.ok(
      Number(view.pricePerHourUsd) < honestPrice,
      `${view.pricePerHourUsd} < ${honestPrice}`,
    );

    const nothing = await node(tc, supplier.apiKey, "h100x8");
    await proveHonestly(nothing, 10, () => clock.advance(1));
    const failed = await assertFailed(tc, nothing, "too-slow");
    assert.ok(failed.devices.every((d) => d.verdict === "too-slow" && d.provenModel === null));
  });

  test("a card faster than its claim can be fails and is flagged", async (t) => {
    // k 1024: the 3060 Ti's time at its peak is above judgeTiming's 1 µs floor for a reported time.
    const clock = new ManualClock();
    const tc = await db.startCoordinator({ clock, config: { proof: { gpuK: 1024 } } });
    t.after(() => tc.close());
    const supplier = await tc.signUp(["supplier"]);
    const worker = await node(tc, supplier.apiKey, "rtx3060ti");
    const rtx3060ti = GPU_CATALOG.find((m) => m.id === "rtx-3060-ti")!;
    await proveHonestly(worker, 2 * rtx3060ti.tensorTflops, () => clock.advance(1));
    await assertFailed(tc, worker, "too-fast");
    assert.deepEqual((await viewOf(tc, worker.nodeId)).flags, ["proof-too-fast"]);
  });

  test("wrong cells fail: a changed leaf, a path to another root, another product", async (t) => {
    const { tc, clock, supplier } = await network(db, t);

    const changed = await node(tc, supplier.apiKey, "rtx4090");
    const prover = new FixtureProver(await nextProve(changed));
    clock.advance(1);
    changed.send(prover.commit(100));
    const reveal = prover.reveal(await nextOpen(changed));
    reveal.cells[0]!.leaf[0]! += 1;
    changed.send(reveal);
    const r1 = await assertFailed(tc, changed, "wrong-result");
    assert.match(r1.reason, /does not lead to the committed root/);

    const other = await node(tc, supplier.apiKey, "h100x8");
    const prove = await nextProve(other);
    const honest = new FixtureProver(prove);
    // The honest leaves, with paths from a product of other seeds: they lead to another root.
    const forged = new FixtureProver({
      ...prove,
      devices: prove.devices.map((d) => ({ ...d, seed: (d.seed + 1) >>> 0 })),
    });
    clock.advance(1);
    other.send(honest.commit(HONEST_H100_TFLOPS));
    const opened = await nextOpen(other);
    const forgedPaths = forged.reveal(opened).cells;
    const withOtherPaths = honest.reveal(opened);
    withOtherPaths.cells.forEach((c, i) => (c.path = forgedPaths[i]!.path));
    other.send(withOtherPaths);
    const r2 = await assertFailed(tc, other, "wrong-result");
    assert.match(r2.reason, /does not lead to the committed root/);

    // Consistent with its own root, but not the product asked for.
    const lazy = await node(tc, supplier.apiKey, "h100x8");
    const asked = await nextProve(lazy);
    const wrong = new FixtureProver({
      ...asked,
      devices: asked.devices.map((d) => ({ ...d, seed: (d.seed + 1) >>> 0 })),
    });
    clock.advance(1);
    lazy.send(wrong.commit(HONEST_H100_TFLOPS));
    lazy.send(wrong.reveal(await nextOpen(lazy)));
    const r3 = await assertFailed(tc, lazy, "wrong-result");
    assert.match(r3.reason, /not the product's/);
    assert.ok(r3.devices.every((d) => d.verdict === "wrong-result"));
  });

  test("an answer after its deadline is late", async (t) => {
    const { tc, clock, supplier } = await network(db, t);
    const slow = await node(tc, supplier.apiKey, "h100x8");
    const prover = new FixtureProver(await nextProve(slow));
    clock.advance(60_000 + SMALL_PROOF_POLICY.overheadMs);
    slow.send(prover.commit(HONEST_H100_TFLOPS));
    const r1 = await assertFailed(tc, slow, "late");
    assert.match(r1.reason, /^committed after 80000 ms, past its \d+ ms deadline/);
    assert.ok(r1.devices.every((d) => d.verdict === "late"));

    const slowReveal = await node(tc, supplier.apiKey, "none");
    const p2 = new FixtureProver(await nextProve(slowReveal));
    slowReveal.send(p2.commit());
    const open = await nextOpen(slowReveal);
    clock.advance(10_000 + SMALL_PROOF_POLICY.overheadMs);
    slowReveal.send(p2.reveal(open));
    const r2 = await assertFailed(tc, slowReveal, "late");
    assert.match(r2.reason, /^revealed 30000 ms after the opening/);
  });

  test("an idle node is spot-checked again and again: a pass keeps it, a failure unverifies it until it passes", async (t) => {
    const clock = new ManualClock();
    const intervalMs = 60_000;
    const tc = await db.startCoordinator({
      clock,
      config: { livenessSweepMs: 0, proofIntervalMs: intervalMs },
    });
    t.after(() => tc.close());
    const supplier = await tc.signUp(["supplier"]);
    const worker = await node(tc, supplier.apiKey, "none");
    await proveHonestly(worker);
    const rows = async () =>
      (await tc.client().nodeHistory(worker.nodeId)).items
        .filter((i) => i.action.startsWith("verification-"))
        .map((i) => i.action);
    await eventually(async () => ((await rows()).length === 1 ? true : undefined), "first proof");
    assert.equal((await viewOf(tc, worker.nodeId)).status, "available");

    // Nothing is asked before half the interval; by the interval a spot check has come.
    clock.advance(intervalMs);
    await proveHonestly(worker);
    await eventually(async () => ((await rows()).length === 2 ? true : undefined), "spot check");
    assert.equal((await viewOf(tc, worker.nodeId)).status, "available");

    // The next one is answered wrongly: back to unverified, not placed.
    clock.advance(intervalMs);
    const prover = new FixtureProver(await nextProve(worker));
    worker.send(prover.commit());
    const reveal = prover.reveal(await nextOpen(worker));
    reveal.cells[0]!.leaf[0]! += 1;
    worker.send(reveal);
    await eventually(async () => ((await rows()).length === 3 ? true : undefined), "failed check");
    assert.deepEqual(await rows(), [
      "verification-passed",
      "verification-passed",
      "verification-failed",
    ]);
    assert.equal((await viewOf(tc, worker.nodeId)).status, "unverified");

    // Still connected, it is tried again on the same schedule and comes back once it passes.
    clock.advance(intervalMs);
    await proveHonestly(worker);
    await eventually(
      async () => ((await viewOf(tc, worker.nodeId)).status === "available" ? true : undefined),
      "available again",
    );
  });

  test("a spot check under way when its node is placed is dropped: no verdict, the lease stands", async (t) => {
    const clock = new ManualClock();
    const intervalMs = 60_000;
    const tc = await db.startCoordinator({
      clock,
      config: { livenessSweepMs: 0, proofIntervalMs: intervalMs },
    });
    t.after(() => tc.close());
    const supplier = await tc.signUp(["supplier"]);
    const worker = await node(tc, supplier.apiKey, "none");
    await proveHonestly(worker);
    await eventually(
      async () => ((await viewOf(tc, worker.nodeId)).status === "available" ? true : undefined),
      "available",
    );
    clock.advance(intervalMs);
    const prover = new FixtureProver(await nextProve(worker));
    assert.equal(tc.coordinator.gateway.proofs.size, 1);
    await tc.coordinator.lifecycle.apply(
      worker.nodeId,
      { type: "lease" },
      { actor: "test", reason: "placed mid-proof", nowMs: clock.now() },
    );
    assert.equal(tc.coordinator.gateway.proofs.size, 0, "the proof in flight is dropped");
    worker.send(prover.commit()); // its late answer: ignored
    assert.equal((await viewOf(tc, worker.nodeId)).status, "leased");

    // Idle again, the check that fell due during the lease comes at once; the dropped one left
    // nothing on record (the worker's messages are read in order: its commit came first).
    await tc.coordinator.lifecycle.apply(
      worker.nodeId,
      { type: "release" },
      { actor: "test", reason: "lease ended", nowMs: clock.now() },
    );
    await proveHonestly(worker);
    const rows = await eventually(async () => {
      const { items } = await tc.client().nodeHistory(worker.nodeId);
      const proofs = items.filter((i) => i.action.startsWith("verification-"));
      return proofs.length === 2 ? proofs : undefined;
    }, "the check after the lease");
    assert.deepEqual(
      rows.map((i) => i.action),
      ["verification-passed", "verification-passed"],
    );
    assert.equal((await viewOf(tc, worker.nodeId)).status, "available");
  });

  test("a node that reports other GPUs must prove them before it is rented again", async (t) => {
    const { tc, clock, supplier } = await network(db, t);
    const worker = await node(tc, supplier.apiKey, "h100x8");
    await proveHonestly(worker, HONEST_H100_TFLOPS, () => clock.advance(1));
    await proofOf(tc, worker.nodeId);
    worker.socket.close();
    await worker.closed();
    clock.advance(60_000);
    await tc.coordinator.gateway.sweep();
    assert.equal((await viewOf(tc, worker.nodeId)).status, "offline");

    await worker.reregister("rtx4090");
    const again = await worker.reconnect();
    const prove = await nextProve(again);
    assert.equal(prove.devices.length, 1);
    assert.equal((await viewOf(tc, worker.nodeId)).status, "unverified");
    assert.equal((await viewOf(tc, worker.nodeId)).gpuModel, "rtx-4090");
  });

  test("a worker that never answers is failed late by the deadline's timer", async (t) => {
    // 20 ms of overhead allowance: the deadlines (real timers) pass while the worker stays silent.
    const tc = await db.startCoordinator({ config: { proof: { overheadMs: 20 } } });
    t.after(() => tc.close());
    const supplier = await tc.signUp(["supplier"]);
    const silent = await node(tc, supplier.apiKey, "h100x8");
    await nextProve(silent);
    const r1 = await assertFailed(tc, silent, "late");
    assert.match(r1.reason, /^no commitment within its \d+ ms deadline$/);

    const noReveal = await node(tc, supplier.apiKey, "none");
    noReveal.send(new FixtureProver(await nextProve(noReveal)).commit());
    await nextOpen(noReveal);
    const r2 = await assertFailed(tc, noReveal, "late");
    assert.equal(r2.reason, "no reveal within its 20 ms deadline");
  });

  test("a replayed or foreign proof id fails the proof in flight", async (t) => {
    const { tc, clock, supplier } = await network(db, t);
    const worker = await node(tc, supplier.apiKey, "h100x8");
    const first = new FixtureProver(await nextProve(worker));
    worker.socket.close();
    await worker.closed();
    const again = await worker.reconnect();
    const second = await nextProve(again);
    assert.notEqual(second.proofId, first.prove.proofId);
    clock.advance(1);
    again.send(first.commit(HONEST_H100_TFLOPS));
    const record = await assertFailed(tc, { ...again, nodeId: worker.nodeId }, "inconsistent");
    assert.equal(record.proofId, second.proofId);
    assert.equal(record.reason, `a commitment for another proof (${first.prove.proofId})`);
    // Nothing more is judged for it: a later answer to the proof just failed is ignored.
    again.send(new FixtureProver(second).commit(HONEST_H100_TFLOPS));
    again.send(heartbeat(0));
    await eventually(
      () => Promise.resolve(tc.coordinator.gateway.detector.lastPayload(worker.nodeId)),
      "the heartbeat sent after the late commitment",
    );
    const { items } = await tc.client().nodeHistory(worker.nodeId);
    assert.equal(items.filter((i) => i.action.startsWith("verification-")).length, 1);
    assert.equal(again.socket.readyState, again.socket.OPEN);
  });

  test("a device list other than the report's, or a device error, fails", async (t) => {
    const { tc, clock, supplier } = await network(db, t);
    const swapped = await node(tc, supplier.apiKey, "h100x8");
    const prover = new FixtureProver(await nextProve(swapped));
    const commit = prover.commit(HONEST_H100_TFLOPS);
    const dropped = commit.devices.pop()!;
    commit.devices.push({ ...dropped, device: "GPU-00000000-0000-0000-0000-000000000000" });
    clock.advance(1);
    swapped.send(commit);
    swapped.send(prover.reveal(await nextOpen(swapped)));
    const r1 = await assertFailed(tc, swapped, "missing");
    assert.match(r1.reason, /^answered for GPU-00000000-0000-0000-0000-000000000000, not asked/);
    assert.equal(r1.devices.filter((d) => d.verdict === "passed").length, 7);

    const broken = await node(tc, supplier.apiKey, "h100x8");
    const p2 = new FixtureProver(await nextProve(broken));
    const c2 = p2.commit(HONEST_H100_TFLOPS);
    c2.devices[3] = { device: c2.devices[3]!.device, error: "CUDA_ERROR_OUT_OF_MEMORY" };
    clock.advance(1);
    broken.send(c2);
    broken.send(p2.reveal(await nextOpen(broken)));
    const r2 = await assertFailed(tc, broken, "device-error");
    assert.equal(r2.devices[3]!.detail, "CUDA_ERROR_OUT_OF_MEMORY");
  });
});
