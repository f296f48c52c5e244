import assert from "node:assert/strict";
import { describe, it } from "node:test";
import fc from "fast-check";
import { gpuModelById, GPU_CATALOG, type GpuModel } from "./gpu-catalog.ts";
import {
  DEFAULT_PROOF_POLICY,
  PROOF_LEAF_CELLS,
  ProofTree,
  cpuWorkload,
  gpuWorkload,
  hashLeaf,
  judgeTiming,
  leafCells,
  leafOfCell,
  peakFlopsPerMs,
  proofCell,
  proofDeadlineMs,
  proofEntry,
  proofFlops,
  proofLeafCount,
  proofLineBase,
  proofRows,
  provenGpuModel,
  rootFromPath,
} from "./hardware-proof.ts";

const model = (id: string): GpuModel => gpuModelById(id)!;
const policy = DEFAULT_PROOF_POLICY;

describe("the proof's product", () => {
  it("gives every cell the same from the rows and from the seed alone", () => {
    const w = { seed: 0xdecafbad, n: 40, k: 300 };
    const rows = proofRows(w, 0, w.n);
    for (let i = 0; i < w.n; i++)
      for (let j = 0; j < w.n; j++) assert.equal(rows[i * w.n + j], proofCell(w, i, j));
    // A slice of rows is the same numbers.
    assert.deepEqual(proofRows(w, 7, 9), rows.subarray(7 * w.n, 9 * w.n));
  });

  it("draws entries evenly from {-2, -1, 0, 1}, different per seed and per line", () => {
    const counts = new Map<number, number>();
    const base = proofLineBase(1, 0, 0);
    for (let p = 0; p < 40_000; p++) {
      const v = proofEntry(base, p);
      counts.set(v, (counts.get(v) ?? 0) + 1);
    }
    assert.deepEqual([...counts.keys()].sort(), [-1, -2, 0, 1]);
    for (const count of counts.values()) assert.ok(Math.abs(count - 10_000) < 600, `${count}`);
    assert.notEqual(proofLineBase(1, 0, 0), proofLineBase(2, 0, 0));
    assert.notEqual(proofLineBase(1, 0, 0), proofLineBase(1, 1, 0));
    assert.notEqual(proofLineBase(1, 0, 0), proofLineBase(1, 0, 1));
  });

  it("a different seed gives a different product", () => {
    const a = proofRows({ seed: 1, n: 8, k: 64 }, 0, 8);
    const b = proofRows({ seed: 2, n: 8, k: 64 }, 0, 8);
    assert.notDeepEqual(a, b);
  });
});

describe("the commitment", () => {
  it("leads every leaf's path to the root, for any leaf count", () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 70 }), (count) => {
        const leaves = Array.from({ length: count }, (_, i) => hashLeaf(Int32Array.of(i, -i)));
        const tree = new ProofTree(leaves);
        for (let i = 0; i < count; i++) {
          const root = rootFromPath(leaves[i]!, i, count, tree.path(i));
          assert.deepEqual(root, tree.root);
        }
      }),
    );
  });

  it("refuses a changed leaf, a path of the wrong length, and a leaf at another index", () => {
    const leaves = Array.from({ length: 9 }, (_, i) => hashLeaf(Int32Array.of(i)));
    const tree = new ProofTree(leaves);
    const path = tree.path(4);
    assert.notDeepEqual(rootFromPath(hashLeaf(Int32Array.of(99)), 4, 9, path), tree.root);
    assert.equal(rootFromPath(leaves[4]!, 4, 9, path.slice(1)), undefined);
    assert.equal(rootFromPath(leaves[4]!, 4, 9, [...path, path[0]!]), undefined);
    assert.notDeepEqual(rootFromPath(leaves[4]!, 5, 9, tree.path(5)), tree.root);
    // The leaf hash is domain-separated from the node hash: a node is not a leaf.
    assert.notDeepEqual(hashLeaf(Int32Array.of(1)), hashLeaf(Int32Array.of(1, 0)));
  });

  it("cuts rows into leaves of up to 256 cells, the last of a row shorter", () => {
    const n = PROOF_LEAF_CELLS + 44;
    assert.equal(proofLeafCount(n), n * 2);
    assert.deepEqual(leafOfCell(n, 3, 0), { leaf: 6, offset: 0 });
    assert.deepEqual(leafOfCell(n, 3, 260), { leaf: 7, offset: 4 });
    const rows = Int32Array.from({ length: n * 4 }, (_, i) => i);
    assert.equal(leafCells(n, rows, 7).length, 44);
    assert.equal(leafCells(n, rows, 7)[4], 3 * n + 260);
    assert.equal(leafCells(n, rows.subarray(2 * n), 7, 2)[4], 3 * n + 260);
  });
});

describe("sizing and judging", () => {
  it("sizes a GPU's work to its model: the target time at peak, whole leaves, half its VRAM", () => {
    for (const m of GPU_CATALOG) {
      const w = gpuWorkload(m, policy, 7);
      assert.equal(w.n % PROOF_LEAF_CELLS, 0);
      assert.equal(w.fillMiB, Math.floor(m.vramMiB / 2));
      const atPeakMs = proofFlops(w) / peakFlopsPerMs(m, policy);
      assert.ok(atPeakMs <= policy.gpuTargetMs && atPeakMs > policy.gpuTargetMs * 0.8, m.id);
      // What the node spends on a proof stays within the 60 s even at the band's floor.
      assert.ok(proofDeadlineMs(w, peakFlopsPerMs(m, policy), policy) <= 60_000, m.id);
    }
    assert.deepEqual(cpuWorkload(policy, 3), { seed: 3, n: 64, k: 8192 });
  });

  it("passes an honest card and refuses a slow, an impossible and an inconsistent one", () => {
    const h100 = model("h100-80gb");
    const w = gpuWorkload(h100, policy, 1);
    const peak = peakFlopsPerMs(h100, policy);
    const at = (fraction: number) => proofFlops(w) / (fraction * peak);
    const honest = judgeTiming(w, peak, at(0.7), at(0.7) + 400, policy);
    assert.equal(honest.ok, true);
    assert.ok(Math.abs(honest.tflops - 0.7 * h100.tensorTflops) < 1);
    assert.equal(judgeTiming(w, peak, at(0.3), at(0.3) + 400, policy).ok, false);
    const fast = judgeTiming(w, peak, at(1.5), at(1.5) + 400, policy);
    assert.equal(!fast.ok && fast.reason, "too-fast");
    const inconsistent = judgeTiming(w, peak, 10_000, 5_000, policy);
    assert.equal(!inconsistent.ok && inconsistent.reason, "inconsistent");
    // A worker that reports the right time but took far longer is judged by what it took.
    const liar = judgeTiming(w, peak, at(0.7), at(0.7) * 20, policy);
    assert.equal(!liar.ok && liar.reason, "too-slow");
  });

  it("rents a card as what it proved: a 3060 Ti claiming a 3080 proves as a 3060 Ti, a CPU as nothing", () => {
    const shown3060Ti = 0.7 * model("rtx-3060-ti").tensorTflops;
    assert.equal(
      provenGpuModel(model("rtx-3080"), shown3060Ti, GPU_CATALOG, policy)?.id,
      "rtx-3060-ti",
    );
    assert.equal(
      provenGpuModel(model("rtx-3080"), 0.7 * 59.5, GPU_CATALOG, policy)?.id,
      "rtx-3080",
    );
    assert.equal(provenGpuModel(model("h100-80gb"), 0.0006, GPU_CATALOG, policy), undefined);
  });
});
