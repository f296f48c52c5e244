/**
 * The proof of hardware, worker side, as a supplier runs it: a real `tandem worker start` process
 * serving a stand-in coordinator (test/support/stand-in-coordinator.ts) answers `prove` and
 * `prove-open`. Its GPUs are the fixture nvidia-smi's and its `--gpu-prover` the fixture helper
 * (test/fixtures/gpu-prover/gpu-prover): fakes at the GPU port, since this machine has no GPU. The
 * coordinator's judging of the answers is tested beside the gateway.
 */
import assert from "node:assert/strict";
import { mkdtemp, rm } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { after, describe, it } from "node:test";
import { gpuModelById } from "../src/core/gpu-catalog.ts";
import { proofFlops } from "../src/core/hardware-proof.ts";
import { NVIDIA_SMI_FIXTURES, spawnTandem } from "./support/processes.ts";
import {
  assertRevealChecksOut,
  cellsToOpen,
  committedRoot,
  deviceError,
} from "./support/proof-reveal.ts";
import {
  STANDIN_ENROLLMENT_TOKEN,
  startStandInCoordinator,
  type StandInCoordinator,
} from "./support/stand-in-coordinator.ts";

const GPU_PROVER = fileURLToPath(new URL("fixtures/gpu-prover/gpu-prover", import.meta.url));
const GPU_0 = "GPU-a8fc067a-25ca-4385-b834-f75648392471"; // test/fixtures/nvidia-smi/h100x8
const GPU_1 = "GPU-a341e8f3-9e2c-45e2-87a9-c620dfb27d81";

const cleanups: Array<() => Promise<unknown>> = [];
after(async () => {
  for (const cleanup of cleanups.reverse()) await cleanup();
});

/** A stand-in coordinator and a real worker on the 8×H100 fixture serving it. */
async function workerOnH100Fixture(
  args: string[],
  env: Record<string, string> = {},
): Promise<StandInCoordinator> {
  const coordinator = await startStandInCoordinator({
    heartbeatIntervalMs: 500,
    fenceAfterMs: 1000,
  });
  cleanups.push(() => coordinator.close());
  const tandemHome = await mkdtemp(path.join(os.tmpdir(), "tandem-proof-"));
  cleanups.push(() => rm(tandemHome, { recursive: true, force: true }));
  const worker = spawnTandem(
    [
      ...["worker", "start", "--region", "eu-west", "--zone", "eu-west-a", "--allow-unsandboxed"],
      ...["--nvidia-smi", path.join(NVIDIA_SMI_FIXTURES, "h100x8", "nvidia-smi"), ...args],
    ],
    {
      TANDEM_HOME: tandemHome,
      TANDEM_URL: coordinator.url,
      TANDEM_ENROLL_TOKEN: STANDIN_ENROLLMENT_TOKEN,
      ...env,
    },
  );
  cleanups.push(() => worker.kill("SIGKILL"));
  await worker.line(/serving node/);
  await coordinator.next("heartbeat");
  return coordinator;
}

/** Resolves on the worker's next heartbeat: it is still serving. */
async function nextHeartbeat(coordinator: StandInCoordinator): Promise<void> {
  const beats = () => coordinator.received.filter((m) => m.type === "heartbeat").length;
  const before = beats();
  await coordinator.next("heartbeat", () => beats() > before);
}

const gpu = (device: string, seed: number, fillMiB = 4096) =>
  ({ device, kind: "gpu", seed, n: 256, k: 128, fillMiB }) as const;

describe("tandem worker start: proof of hardware", { timeout: 120_000 }, () => {
  it("proves its GPUs through --gpu-prover (with the worker's environment) and its cores", async () => {
    // The helper stands in for an RTX 3060 Ti where nvidia-smi claims H100s: it reports that card's time.
    const coordinator = await workerOnH100Fixture(["--gpu-prover", GPU_PROVER], {
      TANDEM_FIXTURE_CARD: "rtx-3060-ti",
    });
    const devices = [
      gpu(GPU_0, 11),
      gpu(GPU_1, 12),
      { device: "cpu:0", kind: "cpu", seed: 13, n: 64, k: 2048, fillMiB: 0 },
    ] as const;
    coordinator.broadcast({ type: "prove", proofId: "proof-a", devices: [...devices] });
    const commit = await coordinator.next("prove-commit");
    assert.equal(commit.proofId, "proof-a");
    const card = gpuModelById("rtx-3060-ti")!;
    for (const d of devices.slice(0, 2))
      assert.equal(
        committedRoot(commit, d.device).computeMs,
        proofFlops(d) / (0.7 * card.tensorTflops * 1e9),
      );
    const cells = cellsToOpen(devices);
    coordinator.broadcast({ type: "prove-open", proofId: "proof-a", cells });
    assertRevealChecksOut(devices, commit, await coordinator.next("prove-reveal"), cells.length);

    // More VRAM than the card has: that GPU's error, the other proven, the worker serving on.
    coordinator.broadcast({
      type: "prove",
      proofId: "proof-b",
      devices: [gpu(GPU_0, 21, 20_000), gpu(GPU_1, 22)],
    });
    const second = await coordinator.next("prove-commit", (m) => m.proofId === "proof-b");
    assert.match(deviceError(second, GPU_0), /^out of memory: 20000 MiB asked of a .*3060 Ti/);
    committedRoot(second, GPU_1);
    await nextHeartbeat(coordinator);
  });

  it("without a GPU prover helper each GPU answers why, and its cores are still proven", async () => {
    const coordinator = await workerOnH100Fixture([]);
    coordinator.broadcast({
      type: "prove",
      proofId: "proof-c",
      devices: [
        gpu(GPU_0, 31),
        { device: "cpu:0", kind: "cpu", seed: 32, n: 64, k: 256, fillMiB: 0 },
      ],
    });
    const commit = await coordinator.next("prove-commit");
    assert.match(
      deviceError(commit, GPU_0),
      /^this worker has no GPU prover helper yet \(.*tandem-gpu-prover not found; --gpu-prover names one\)$/,
    );
    committedRoot(commit, "cpu:0");
  });

  it("a helper that crashes is that GPU's error, and the worker serves on", async () => {
    const crashing = fileURLToPath(new URL("fixtures/gpu-prover/crashing", import.meta.url));
    const coordinator = await workerOnH100Fixture(["--gpu-prover", crashing]);
    coordinator.broadcast({ type: "prove", proofId: "proof-d", devices: [gpu(GPU_0, 41)] });
    const commit = await coordinator.next("prove-commit");
    assert.match(
      deviceError(commit, GPU_0),
      /^GPU prover helper was killed by SIGSEGV before answering: CUDA error: an illegal memory access/,
    );
    await nextHeartbeat(coordinator);
  });
});
