/**
 * The worker's prover with real threads and real helper processes. The GPU helper here is the
 * fixture test/fixtures/gpu-prover/* — a fake at the GPU port (no GPU on this machine): it
 * computes the exact product on the CPU and reports the time the card it stands in for would take.
 */
import assert from "node:assert/strict";
import { fileURLToPath } from "node:url";
import { describe, it } from "node:test";
import type { z } from "zod";
import {
  assertRevealChecksOut,
  cellsToOpen,
  committedRoot,
  deviceError,
} from "../../../test/support/proof-reveal.ts";
import { gpuModelById } from "../../core/gpu-catalog.ts";
import { proofFlops } from "../../core/hardware-proof.ts";
import type { ProveCommitMessage, ProveMessage } from "../../protocol/worker-messages.ts";
import { proveOnCpu } from "./cpu-prover.ts";
import { HardwareProver, type HardwareProverOptions } from "./hardware-prover.ts";

const FIXTURES = fileURLToPath(new URL("../../../test/fixtures/gpu-prover/", import.meta.url));
const H100 = "GPU-a8fc067a-25ca-4385-b834-f75648392471"; // test/fixtures/nvidia-smi/h100x8
const H100_2 = "GPU-a341e8f3-9e2c-45e2-87a9-c620dfb27d81";

type Device = z.infer<typeof ProveMessage>["devices"][number];
type Commit = z.infer<typeof ProveCommitMessage>;

function prover(helper = "gpu-prover", options: Partial<HardwareProverOptions> = {}) {
  return new HardwareProver({ gpu: { command: FIXTURES + helper, isDefault: false }, ...options });
}

const cpu = (i: number, seed: number, n = 64, k = 512): Device => ({
  device: `cpu:${i}`,
  kind: "cpu",
  seed,
  n,
  k,
  fillMiB: 0,
});
const gpu = (device: string, seed: number, fillMiB = 1024): Device => ({
  device,
  kind: "gpu",
  seed,
  n: 300,
  k: 64,
  fillMiB,
});

/** Opens a few cells of every device and checks each as the coordinator does. */
async function openAndCheck(
  p: HardwareProver,
  proofId: string,
  devices: Device[],
  commit: Commit | undefined,
) {
  const cells = cellsToOpen(devices);
  const reveal = await p.open({ type: "prove-open", proofId, cells });
  assertRevealChecksOut(devices, commit, reveal, cells.length);
}

describe("CPU prover", () => {
  it("commits per core-device and reveals cells that check out against the root", async () => {
    const p = prover();
    const devices = [cpu(0, 11), cpu(1, 12, 300, 256)];
    const commit = await p.prove({ type: "prove", proofId: "p1", devices });
    assert.equal(commit?.proofId, "p1");
    for (const d of devices) assert.ok(committedRoot(commit, d.device).computeMs > 0);
    await openAndCheck(p, "p1", devices, commit);
    // Dropped after the opening: a second one reveals nothing.
    const again = await p.open({
      type: "prove-open",
      proofId: "p1",
      cells: [{ device: "cpu:0", row: 0, col: 0 }],
    });
    assert.deepEqual(again.cells, []);
  });

  it("works each core-device in its own thread while the main thread stays free", async () => {
    let ticks = 0;
    const timer = setInterval(() => ticks++, 5);
    const runs = [0, 1].map((i) => proveOnCpu({ seed: i, n: 64, k: 65_536 }, 60_000));
    const results = await Promise.all(runs.map((r) => r.done));
    clearInterval(timer);
    const ids = results.map((r) => {
      assert.ok(r.ok);
      return r.proof.threadId;
    });
    assert.ok(
      ids.every((id) => id !== 0),
      "not on the main thread",
    );
    assert.notEqual(ids[0], ids[1]);
    assert.ok(ticks >= 2, `the main thread's timers ran ${ticks} times during the proof`);
  });

  it("refuses work too big for a core, a device listed twice and a core it does not have", async () => {
    const commit = await prover("gpu-prover", { cores: 2 }).prove({
      type: "prove",
      proofId: "big",
      devices: [
        cpu(0, 1, 1 << 20, 1 << 22),
        cpu(1, 2),
        cpu(1, 3),
        cpu(2, 4),
        { ...cpu(0, 5), device: "cpu:01" },
      ],
    });
    assert.deepEqual(commit?.devices.slice(3), [
      { device: "cpu:2", error: "no such CPU core here (this machine has 2)" },
      { device: "cpu:01", error: "no such CPU core here (this machine has 2)" },
    ]);
    assert.match(deviceError(commit, "cpu:0"), /too big for a CPU core/);
    assert.equal(commit?.devices.length, 5);
    assert.ok("root" in commit.devices[1]!);
    assert.deepEqual(commit.devices[2], { device: "cpu:1", error: "device listed twice" });
  });
});

describe("GPU prover port (fixture helper: a fake at the GPU port)", () => {
  it("commits with the card's time and reveals cells that check out", async () => {
    const p = prover();
    const devices = [gpu(H100, 5), gpu(H100_2, 6)];
    const commit = await p.prove({ type: "prove", proofId: "g1", devices });
    const h100 = gpuModelById("h100-80gb")!;
    for (const d of devices) {
      const c = committedRoot(commit, d.device);
      assert.equal(c.computeMs, proofFlops(d) / (0.7 * h100.tensorTflops * 1e9));
      assert.equal(c.allocatedMiB, 1024);
    }
    await openAndCheck(p, "g1", devices, commit);
  });

  it("passes the worker's environment to the helper (the card it stands in for)", async () => {
    const p = prover("gpu-prover", {
      gpu: {
        command: `${FIXTURES}gpu-prover`,
        isDefault: false,
        env: { ...process.env, TANDEM_FIXTURE_CARD: "rtx-4090", TANDEM_FIXTURE_EFFICIENCY: "0.5" },
      },
    });
    const d = gpu("GPU-not-in-any-fixture", 9);
    const commit = await p.prove({ type: "prove", proofId: "env", devices: [d] });
    const rtx4090 = gpuModelById("rtx-4090")!;
    assert.equal(
      committedRoot(commit, d.device).computeMs,
      proofFlops(d) / (0.5 * rtx4090.tensorTflops * 1e9),
    );
    p.drop();

    // A dishonest CPU doing the work reports its own time: far above an RTX 4090's.
    const real = await prover("gpu-prover", {
      gpu: {
        command: `${FIXTURES}gpu-prover`,
        isDefault: false,
        env: { ...process.env, TANDEM_FIXTURE_CARD: "rtx-4090", TANDEM_FIXTURE_TIMING: "real" },
      },
    }).prove({ type: "prove", proofId: "real", devices: [d] });
    assert.ok(
      committedRoot(real, d.device).computeMs >
        (100 * proofFlops(d)) / (rtx4090.tensorTflops * 1e9),
    );
  });

  it("answers a device error when the card's VRAM is exceeded", async () => {
    const commit = await prover().prove({
      type: "prove",
      proofId: "oom",
      devices: [gpu(H100, 1, 90_000), cpu(0, 2)],
    });
    assert.match(deviceError(commit, H100), /^out of memory: 90000 MiB/);
    committedRoot(commit, "cpu:0");
  });

  it("turns a missing, crashing, garbage-printing or hanging helper into a device error", async () => {
    const cases: [HardwareProver, RegExp][] = [
      [prover("no-such-helper"), /^GPU prover helper .*no-such-helper not found$/],
      [
        new HardwareProver({ gpu: { command: `${FIXTURES}no-such-helper`, isDefault: true } }),
        /^this worker has no GPU prover helper yet \(.*no-such-helper not found; --gpu-prover names one\)$/,
      ],
      [
        prover("crashing"),
        /^GPU prover helper was killed by SIGSEGV before answering: CUDA error: an illegal memory access/,
      ],
      [
        prover("garbage"),
        /^GPU prover helper answered outside its protocol: "warming up the GPU..."$/,
      ],
      [
        prover("hanging", { deviceTimeoutMs: 1500 }),
        /^GPU prover helper gave no answer within 1500 ms \(killed\)$/,
      ],
    ];
    for (const [p, reason] of cases) {
      const commit = await p.prove({
        type: "prove",
        proofId: "bad",
        devices: [gpu(H100, 3), cpu(0, 4)],
      });
      assert.match(deviceError(commit, H100), reason);
      committedRoot(commit, "cpu:0");
      const reveal = await p.open({
        type: "prove-open",
        proofId: "bad",
        cells: [{ device: H100, row: 0, col: 0 }],
      });
      assert.deepEqual(reveal.cells, []);
    }
  });

  it("a newer prove replaces an older one; an unknown proofId reveals nothing", async () => {
    const p = prover("hanging");
    const older = p.prove({ type: "prove", proofId: "old", devices: [gpu(H100, 1)] });
    // The same prover's next prove drops the first, killing its helper.
    const second = p.prove({ type: "prove", proofId: "new", devices: [cpu(0, 2)] });
    assert.equal(await older, undefined);
    const commit = await second;
    committedRoot(commit, "cpu:0");
    const unknown = await p.open({
      type: "prove-open",
      proofId: "old",
      cells: [{ device: "cpu:0", row: 0, col: 0 }],
    });
    assert.deepEqual(unknown.cells, []);
    const revealed = await p.open({
      type: "prove-open",
      proofId: "new",
      cells: [{ device: "cpu:0", row: 0, col: 0 }],
    });
    assert.equal(revealed.cells.length, 1);
  });
});
