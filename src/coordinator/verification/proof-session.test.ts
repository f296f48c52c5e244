// The proof session's judging in memory (the socket and store paths: test/hardware-proof.test.ts).
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { DEFAULT_PROOF_POLICY } from "../../core/hardware-proof.ts";
import { GPU_CATALOG } from "../../core/gpu-catalog.ts";
import { ManualClock } from "../../../test/support/coordinator.ts";
import { fixtureGpus, hardwareWith } from "../../../test/support/devices.ts";
import { FixtureProver } from "../../../test/support/prover.ts";
import { MAX_CPU_DEVICES, ProofSession, type ProofOutcome } from "./proof-session.ts";

const policy = { ...DEFAULT_PROOF_POLICY, gpuTargetMs: 0.0001, gpuK: 256, cpuN: 16, cpuK: 512 };
const tflopsOf = (id: string) => GPU_CATALOG.find((m) => m.id === id)!.tensorTflops;

function started(hardware: Parameters<typeof ProofSession.start>[0], clock = new ManualClock()) {
  const result = ProofSession.start(hardware, policy, clock);
  assert.ok("session" in result);
  return result.session;
}

function isOutcome(reply: unknown): asserts reply is ProofOutcome {
  assert.ok(typeof reply === "object" && reply !== null && "passed" in reply);
}

describe("proof session", () => {
  it("fails at once a node with a GPU outside the catalog, sending nothing", async () => {
    const [h100] = await fixtureGpus("h100x8");
    const unknown = { ...h100!, uuid: "GPU-unknown", name: "NVIDIA GeForce GTX 1080" };
    const result = ProofSession.start(hardwareWith([h100!, unknown]), policy, new ManualClock());
    assert.ok("outcome" in result);
    assert.equal(result.outcome.passed, false);
    assert.equal(result.outcome.record.reason, "GPU model not in the catalog: GPU-unknown");
    assert.deepEqual(
      result.outcome.record.devices.map((d) => [d.device, d.verdict]),
      [
        [h100!.uuid, "missing"],
        ["GPU-unknown", "unknown-model"],
      ],
    );
  });

  it(`proves at most ${MAX_CPU_DEVICES} cores of a CPU-only node`, () => {
    const session = started(hardwareWith([], { cpu: { model: "x", cores: 512, arch: "x64" } }));
    assert.equal(session.begin().devices.length, MAX_CPU_DEVICES);
  });

  it("opens the policy's cells on each GPU, and as many across all of a CPU node's cores", async () => {
    const gpuSession = started(hardwareWith(await fixtureGpus("h100x8")));
    const gpuProver = new FixtureProver(gpuSession.begin());
    const gpuOpen = gpuSession.onCommit(gpuProver.commit(0.8 * tflopsOf("h100-80gb")));
    assert.ok("type" in gpuOpen);
    const perGpu = new Map<string, number>();
    for (const c of gpuOpen.cells) perGpu.set(c.device, (perGpu.get(c.device) ?? 0) + 1);
    assert.deepEqual([...perGpu.values()], Array(8).fill(policy.openedCells));

    const cpuSession = started(hardwareWith([], { cpu: { model: "x", cores: 64, arch: "x64" } }));
    const cpuProver = new FixtureProver(cpuSession.begin());
    const cpuOpen = cpuSession.onCommit(cpuProver.commit());
    assert.ok("type" in cpuOpen);
    assert.equal(cpuOpen.cells.length, policy.openedCells, "8 cells for the node, not per core");
    assert.ok(cpuOpen.cells.every((c) => /^cpu:\d+$/.test(c.device)));
    assert.equal(cpuSession.onReveal(cpuProver.reveal(cpuOpen)).passed, true);
  });

  it("rents a node as its slowest GPU's proven model", async () => {
    const clock = new ManualClock();
    const session = started(hardwareWith((await fixtureGpus("h100x8")).slice(0, 2)), clock);
    const prover = new FixtureProver(session.begin());
    const commit = prover.commit(0.8 * tflopsOf("h100-80gb"));
    // The second card shows an A100's speed.
    const slow = commit.devices[1]!;
    if ("computeMs" in slow) slow.computeMs *= tflopsOf("h100-80gb") / tflopsOf("a100-80gb");
    clock.advance(1);
    const open = session.onCommit(commit);
    assert.ok("type" in open);
    const outcome = session.onReveal(prover.reveal(open));
    assert.equal(outcome.passed, true);
    assert.equal(outcome.provenModel?.id, "a100-80gb");
    assert.equal(outcome.record.reason, "proven as a100-80gb ×2 (claimed h100-80gb)");
    assert.deepEqual(
      outcome.record.devices.map((d) => d.provenModel),
      ["h100-80gb", "a100-80gb"],
    );
  });

  it("fails a reveal before the commitment, and a second commitment", () => {
    const cpu = hardwareWith([], { cpu: { model: "x", cores: 2, arch: "x64" } });
    const early = started(cpu);
    early.begin();
    const outcome = early.onReveal({ type: "prove-reveal", proofId: early.proofId, cells: [] });
    assert.equal(outcome.record.reason, "a reveal before the commitment");
    assert.ok(outcome.record.devices.every((d) => d.verdict === "inconsistent"));

    const twice = started(cpu);
    const again = new FixtureProver(twice.begin());
    assert.ok("type" in twice.onCommit(again.commit()));
    const second = twice.onCommit(again.commit());
    isOutcome(second);
    assert.equal(second.passed, false);
    assert.equal(second.record.reason, "a second commitment");
  });
});
