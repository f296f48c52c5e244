import assert from "node:assert/strict";
import { test } from "node:test";
import { money, units } from "./money.ts";
import { coversWhole, provenCapacity, refusalOf, splitNodeShare } from "./rewards.ts";

test("capacity is catalog FP32 milli-TFLOPS × GPUs, CPU cores × 100, unknown models 0", () => {
  assert.equal(provenCapacity({ gpuModel: "h100-80gb", gpuCount: 8, cpuCores: 64 }), 536_000n);
  assert.equal(provenCapacity({ gpuModel: "rtx-4090", gpuCount: 1, cpuCores: 64 }), 82_600n);
  assert.equal(provenCapacity({ gpuModel: null, gpuCount: 0, cpuCores: 16 }), 1_600n);
  assert.equal(provenCapacity({ gpuModel: "no-such-gpu", gpuCount: 2, cpuCores: 16 }), 0n);
});

test("refusal reasons, in order; an eligible node has none", () => {
  const ok = {
    verified: true,
    flagged: false,
    onlineAllHour: true,
    activeStake: money("5"),
    minimumStake: money("5"),
    capacity: 1n,
  };
  assert.equal(refusalOf(ok), null);
  assert.equal(refusalOf({ ...ok, verified: false, flagged: true }), "not-verified");
  assert.equal(refusalOf({ ...ok, flagged: true, onlineAllHour: false }), "flagged");
  assert.equal(refusalOf({ ...ok, onlineAllHour: false }), "not-online-all-hour");
  assert.equal(refusalOf({ ...ok, activeStake: money("4.999999") }), "stake-below-minimum");
  assert.equal(refusalOf({ ...ok, capacity: 0n }), "no-proven-capacity");
});

test("a node's share: commission rounded down, the rest pro rata to the unit", () => {
  const split = splitNodeShare(units(1001n), 1000, [units(1n), units(1n), units(1n)]);
  assert.equal(split.commission, 100n);
  assert.deepEqual(split.stakers, [301n, 300n, 300n]);
  assert.equal(split.commission + split.stakers.reduce((a, s) => a + s, 0n), 1001n);
  // Nobody to share with: the supplier takes all.
  assert.deepEqual(splitNodeShare(units(7n), 1000, []), { share: 7n, commission: 7n, stakers: [] });
});

test("online the whole hour: joined intervals cover it, a gap or a late start does not", () => {
  const open = { startMs: 0, endMs: null };
  assert.equal(coversWhole([open], 10, 20), true);
  assert.equal(
    coversWhole(
      [
        { startMs: 12, endMs: 30 },
        { startMs: 0, endMs: 12 },
      ],
      10,
      20,
    ),
    true,
  );
  assert.equal(
    coversWhole(
      [
        { startMs: 0, endMs: 12 },
        { startMs: 13, endMs: null },
      ],
      10,
      20,
    ),
    false,
  );
  assert.equal(coversWhole([{ startMs: 11, endMs: null }], 10, 20), false);
  assert.equal(coversWhole([{ startMs: 0, endMs: 19 }], 10, 20), false);
  assert.equal(coversWhole([], 10, 20), false);
});
