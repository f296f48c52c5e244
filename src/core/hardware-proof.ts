/**
 * Proof of hardware (DESIGN.md §5.2): a node is rented as the devices it proved, each proven on its
 * own. Replaces the old 256×256 integer challenge, which any CPU passed for any GPU claim.
 *
 * The work, per device: C = A·B with A n×k and B k×n, whose entries are small integers in {-2..1}
 * drawn from a counter-based hash of (seed, row or column, position) — so every GPU thread, CPU
 * thread and the coordinator generate any entry on its own, with no data sent. |C| ≤ 4k < 2^24, so
 * FP16 inputs with FP32 accumulation (tensor cores) give every cell exactly, in any summation
 * order: the GPU may use its fastest units and the result is still bit-identical everywhere.
 *
 * The commitment: C is cut into leaves of up to 256 cells of one row (int32 little-endian); the
 * worker sends the Merkle root (SHA-256, domain-separated leaf and node hashes, an odd last node
 * promoted). Only then does the coordinator pick random cells; the worker reveals each one's leaf
 * and path, and the coordinator recomputes the cell (k multiply-adds) and the path to the root. A
 * worker that computed only a fraction f of C passes with probability f^s for s cells (s = 8: one
 * that skipped half passes 1 time in 256, and it is proven again and again).
 *
 * Timing decides what was proven. `computeMs` is the worker's own measure of the work; the
 * coordinator also times the whole exchange (`elapsedMs`). The effective time is the larger of
 * `computeMs` and `elapsedMs − overheadMs` (start-up, round trips), so a worker cannot claim speed
 * it did not show. Against the claimed model's peak (catalog tensor TFLOPS, or a CPU core's
 * reference rate): below `minFraction` of it is too slow for that model, above `maxFraction` is
 * faster than the model can be (flagged). Workloads are sized per model to take `targetMs` at
 * peak, so the overhead allowance is small beside the work and a slower card cannot hide in it.
 *
 * What this does not prove: VRAM beyond the helper's allocation of `fillMiB` (a modified helper
 * could regenerate operands instead of holding them; the compute band still holds), and that the
 * device is not shared with other work between proofs (proofs recur at random while idle).
 */
import { sha256 } from "@noble/hashes/sha2.js";
import type { GpuModel } from "./gpu-catalog.ts";

/** Cells per Merkle leaf: one leaf holds up to this many consecutive cells of one row. */
export const PROOF_LEAF_CELLS = 256;

/** One device's work: C = A(n×k)·B(k×n) from `seed`. */
export interface ProofWorkload {
  /** 32-bit seed, fresh per device and per proof. */
  readonly seed: number;
  /** Rows of A = columns of B = side of C. */
  readonly n: number;
  /** Inner dimension (≤ 2^22 keeps every cell exact in FP32). */
  readonly k: number;
}

/** The largest inner dimension for which FP32 accumulation of {-2..1}² products stays exact. */
export const PROOF_MAX_K = 1 << 22;

/** Multiply-adds (×2 for FLOPs) of a workload. */
export function proofFlops(w: ProofWorkload): number {
  return 2 * w.n * w.n * w.k;
}

/** "lowbias32" (Chris Wellons): a 32-bit integer hash, cheap on GPUs and in JavaScript. */
function mix32(x: number): number {
  x ^= x >>> 16;
  x = Math.imul(x, 0x7feb352d);
  x ^= x >>> 15;
  x = Math.imul(x, 0x846ca68b);
  x ^= x >>> 16;
  return x >>> 0;
}

/** The base of one row of A (matrix 0) or one column of B (matrix 1). */
export function proofLineBase(seed: number, matrix: 0 | 1, line: number): number {
  return mix32(
    (mix32(seed ^ Math.imul(matrix + 1, 0x9e3779b9)) + Math.imul(line, 0x85ebca6b)) >>> 0,
  );
}

/** Entry `position` (0 ≤ position < k) of the line with `base`: an integer in {-2, -1, 0, 1}. */
export function proofEntry(base: number, position: number): number {
  return (mix32((base ^ Math.imul(position + 1, 0x9e3779b9)) >>> 0) >>> 30) - 2;
}

/** C[row][col], computed from the seed alone: k multiply-adds (what the coordinator checks). */
export function proofCell(w: ProofWorkload, row: number, col: number): number {
  const a = proofLineBase(w.seed, 0, row);
  const b = proofLineBase(w.seed, 1, col);
  let sum = 0;
  for (let p = 0; p < w.k; p++) sum += proofEntry(a, p) * proofEntry(b, p);
  return sum;
}

/**
 * Rows [from, to) of C, row-major (a reference implementation: the CPU prover and test fixtures
 * use it; a GPU helper computes the same numbers its own way).
 */
export function proofRows(w: ProofWorkload, from: number, to: number): Int32Array {
  const { n, k } = w;
  const b = new Int8Array(k * n); // B column-major: column j at [j*k, (j+1)*k)
  for (let j = 0; j < n; j++) {
    const base = proofLineBase(w.seed, 1, j);
    for (let p = 0; p < k; p++) b[j * k + p] = proofEntry(base, p);
  }
  const out = new Int32Array((to - from) * n);
  const a = new Int8Array(k);
  for (let i = from; i < to; i++) {
    const base = proofLineBase(w.seed, 0, i);
    for (let p = 0; p < k; p++) a[p] = proofEntry(base, p);
    for (let j = 0; j < n; j++) {
      let sum = 0;
      const offset = j * k;
      for (let p = 0; p < k; p++) sum += a[p]! * b[offset + p]!;
      out[(i - from) * n + j] = sum;
    }
  }
  return out;
}

// The commitment

/** Leaves per row of C. */
export function leavesPerRow(n: number): number {
  return Math.ceil(n / PROOF_LEAF_CELLS);
}

/** Leaves of the whole of C. */
export function proofLeafCount(n: number): number {
  return n * leavesPerRow(n);
}

/** The leaf that holds C[row][col], and where in it. */
export function leafOfCell(n: number, row: number, col: number): { leaf: number; offset: number } {
  const chunk = Math.floor(col / PROOF_LEAF_CELLS);
  return { leaf: row * leavesPerRow(n) + chunk, offset: col - chunk * PROOF_LEAF_CELLS };
}

/** The cells of leaf `leaf` as they lie in a row-major C (or a slice of C starting at row `from`). */
export function leafCells(n: number, rows: Int32Array, leaf: number, from = 0): Int32Array {
  const perRow = leavesPerRow(n);
  const row = Math.floor(leaf / perRow) - from;
  const start = (leaf % perRow) * PROOF_LEAF_CELLS;
  const end = Math.min(n, start + PROOF_LEAF_CELLS);
  return rows.subarray(row * n + start, row * n + end);
}

const LEAF_TAG = 0x00;
const NODE_TAG = 0x01;

/** SHA-256(0x00 ‖ cells as int32 little-endian). */
export function hashLeaf(cells: Int32Array): Uint8Array {
  const bytes = new Uint8Array(1 + cells.length * 4);
  bytes[0] = LEAF_TAG;
  const view = new DataView(bytes.buffer);
  for (let i = 0; i < cells.length; i++) view.setInt32(1 + i * 4, cells[i]!, true);
  return sha256(bytes);
}

function hashNode(left: Uint8Array, right: Uint8Array): Uint8Array {
  const bytes = new Uint8Array(65);
  bytes[0] = NODE_TAG;
  bytes.set(left, 1);
  bytes.set(right, 33);
  return sha256(bytes);
}

/** A Merkle tree over leaf hashes, every level kept (the worker keeps it to answer openings). */
export class ProofTree {
  private readonly levels: Uint8Array[][];

  constructor(leaves: Uint8Array[]) {
    if (leaves.length === 0) throw new RangeError("a proof tree needs at least one leaf");
    this.levels = [leaves];
    for (let level = leaves; level.length > 1;) {
      const next: Uint8Array[] = [];
      for (let i = 0; i < level.length; i += 2)
        next.push(i + 1 < level.length ? hashNode(level[i]!, level[i + 1]!) : level[i]!);
      this.levels.push(next);
      level = next;
    }
  }

  get root(): Uint8Array {
    return this.levels[this.levels.length - 1]![0]!;
  }

  /** Sibling hashes from the leaf up (a promoted node has none at its level). */
  path(leaf: number): Uint8Array[] {
    const siblings: Uint8Array[] = [];
    let index = leaf;
    for (const level of this.levels.slice(0, -1)) {
      const sibling = index % 2 === 0 ? index + 1 : index - 1;
      if (sibling < level.length) siblings.push(level[sibling]!);
      index = Math.floor(index / 2);
    }
    return siblings;
  }
}

/** The root a leaf and its path lead to; undefined when the path has the wrong length. */
export function rootFromPath(
  leafHash: Uint8Array,
  leaf: number,
  leafCount: number,
  path: readonly Uint8Array[],
): Uint8Array | undefined {
  let hash = leafHash;
  let index = leaf;
  let width = leafCount;
  let used = 0;
  while (width > 1) {
    const promoted = index % 2 === 0 && index + 1 >= width;
    if (!promoted) {
      const sibling = path[used++];
      if (sibling?.length !== 32) return undefined;
      hash = index % 2 === 0 ? hashNode(hash, sibling) : hashNode(sibling, hash);
    }
    index = Math.floor(index / 2);
    width = Math.ceil(width / 2);
  }
  return used === path.length ? hash : undefined;
}

// Sizing and judging

/** How big proofs are and how they are judged (coordinator configuration). */
export interface ProofPolicy {
  /** A GPU's work at its model's peak, ms (default 5000: an H100 at half its peak takes 10 s). */
  gpuTargetMs: number;
  /** Inner dimension of GPU work (default 65536: a cell costs the coordinator 65536 multiply-adds). */
  gpuK: number;
  /** Fraction of the claimed VRAM the GPU helper allocates and fills (default 0.5). */
  vramFraction: number;
  /** A CPU core's work: side and inner dimension (defaults 64 and 8192: 67 MFLOP, ~0.1 s). */
  cpuN: number;
  cpuK: number;
  /**
   * A CPU core's reference rate, GFLOPS (default 0.25: the reference product in JavaScript does
   * 0.6 on a loaded core of the 2-core development machine).
   */
  cpuCoreGflops: number;
  /**
   * Slower than this fraction of the peak: not the claimed device (default 0.5; to be calibrated on
   * real cards with the GPU helper: it must sit below what an honest card reaches and above what
   * the next-slower model can).
   */
  minFraction: number;
  /** Faster than this fraction of the peak: impossible for the claim, flagged (default 1.05). */
  maxFraction: number;
  /** Start-up and round trips allowed beyond the work itself, ms (default 3000). */
  overheadMs: number;
  /** Cells opened per device (default 8). */
  openedCells: number;
}

export const DEFAULT_PROOF_POLICY: ProofPolicy = {
  gpuTargetMs: 5000,
  gpuK: 65_536,
  vramFraction: 0.5,
  cpuN: 64,
  cpuK: 8192,
  cpuCoreGflops: 0.25,
  minFraction: 0.5,
  maxFraction: 1.05,
  overheadMs: 3000,
  openedCells: 8,
};

/** The side of C rounded down to whole leaves (at least one leaf wide). */
function sideFor(flops: number, k: number): number {
  const n = Math.sqrt(flops / (2 * k));
  return Math.max(PROOF_LEAF_CELLS, Math.floor(n / PROOF_LEAF_CELLS) * PROOF_LEAF_CELLS);
}

/** A GPU of `model`'s work under `policy` (the seed is the caller's). */
export function gpuWorkload(
  model: GpuModel,
  policy: ProofPolicy,
  seed: number,
): ProofWorkload & { fillMiB: number } {
  const k = Math.min(policy.gpuK, PROOF_MAX_K);
  const flops = policy.gpuTargetMs * model.tensorTflops * 1e9;
  return {
    seed,
    n: sideFor(flops, k),
    k,
    fillMiB: Math.floor(model.vramMiB * policy.vramFraction),
  };
}

/** One CPU core's work. */
export function cpuWorkload(policy: ProofPolicy, seed: number): ProofWorkload {
  return { seed, n: policy.cpuN, k: Math.min(policy.cpuK, PROOF_MAX_K) };
}

/** Peak FLOPs per ms of the claim: the model's tensor peak, or a CPU core's reference rate. */
export function peakFlopsPerMs(model: GpuModel | undefined, policy: ProofPolicy): number {
  return model === undefined ? policy.cpuCoreGflops * 1e6 : model.tensorTflops * 1e9;
}

/** The longest the coordinator waits for a device's commitment. */
export function proofDeadlineMs(w: ProofWorkload, peak: number, policy: ProofPolicy): number {
  return Math.ceil(proofFlops(w) / (policy.minFraction * peak) + policy.overheadMs);
}

export type TimingVerdict =
  | { ok: true; tflops: number; effectiveMs: number }
  | { ok: false; reason: "too-slow" | "too-fast" | "inconsistent"; tflops: number; detail: string };

/**
 * Judges one device's timing against `peak` (FLOPs per ms). `elapsedMs` is the coordinator's own
 * measure of the exchange; `computeMs` the worker's.
 */
export function judgeTiming(
  w: ProofWorkload,
  peak: number,
  computeMs: number,
  elapsedMs: number,
  policy: ProofPolicy,
): TimingVerdict {
  const flops = proofFlops(w);
  const effectiveMs = Math.max(computeMs, elapsedMs - policy.overheadMs);
  const tflops = flops / effectiveMs / 1e9;
  const peakTflops = peak / 1e9;
  if (computeMs > elapsedMs)
    return {
      ok: false,
      reason: "inconsistent",
      tflops,
      detail: `reported ${Math.round(computeMs)} ms of work in a ${Math.round(elapsedMs)} ms exchange`,
    };
  const claimed = flops / Math.max(computeMs, 1e-3) / 1e9;
  if (claimed > policy.maxFraction * peakTflops)
    return {
      ok: false,
      reason: "too-fast",
      tflops: claimed,
      detail: `${round(claimed)} TFLOPS reported, above the ${round(peakTflops)} the claim can do`,
    };
  if (tflops < policy.minFraction * peakTflops)
    return {
      ok: false,
      reason: "too-slow",
      tflops,
      detail: `${round(tflops)} TFLOPS shown, below ${round(policy.minFraction * peakTflops)} (${policy.minFraction} of the claim's ${round(peakTflops)})`,
    };
  return { ok: true, tflops, effectiveMs };
}

/**
 * The model a GPU is rented as: the claimed one when its speed fits the claim's band; otherwise the
 * slowest catalog model (no more VRAM than claimed) whose band holds the speed shown; undefined when
 * none does. A card that claims more than it is proves as what it is, or as nothing.
 */
export function provenGpuModel(
  claimed: GpuModel,
  tflops: number,
  catalog: readonly GpuModel[],
  policy: Pick<ProofPolicy, "minFraction" | "maxFraction">,
): GpuModel | undefined {
  const fits = (m: GpuModel) =>
    tflops >= policy.minFraction * m.tensorTflops && tflops <= policy.maxFraction * m.tensorTflops;
  if (fits(claimed)) return claimed;
  return catalog
    .filter((m) => m.vramMiB <= claimed.vramMiB && m.tensorTflops < claimed.tensorTflops && fits(m))
    .sort((a, b) => a.tensorTflops - b.tensorTflops)[0];
}

function round(x: number): number {
  return Math.round(x * 100) / 100;
}
