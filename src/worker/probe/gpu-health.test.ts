import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { gpuFault } from "./gpu-health.ts";

const gpu = (n: number) => ({ uuid: `GPU-0000000${n}-aaaa-bbbb-cccc-dddddddddddd` });

describe("GPU health check", () => {
  it("is healthy while every registered GPU answers, and always for CPU-only nodes", () => {
    assert.equal(gpuFault([gpu(1), gpu(2)], [gpu(2), gpu(1)]), null);
    assert.equal(gpuFault([], new Error("nvidia-smi: not found")), null);
  });

  it("names the GPUs that fell off the bus", () => {
    assert.equal(gpuFault([gpu(1), gpu(2)], [gpu(1)]), `1 of 2 GPUs gone: ${gpu(2).uuid}`);
  });

  it("fails when nvidia-smi stops answering", () => {
    assert.equal(
      gpuFault([gpu(1)], new Error("Unable to determine the device handle for GPU0000:3B:00.0")),
      "nvidia-smi failed: Unable to determine the device handle for GPU0000:3B:00.0",
    );
  });
});
