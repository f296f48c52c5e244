/**
 * The compute challenge a node must pass before it is rented (DESIGN.md §5.2).
 *
 * The coordinator sends a seed; the worker builds two n×n matrices from it, multiplies them
 * (32-bit wrapping integer arithmetic, so every machine gets bit-identical results), and commits
 * to the product by sending one digest per row. Only then does the coordinator pick k random rows;
 * the worker reveals them, and the coordinator checks each against its committed digest and
 * recomputes it — O(k·n²) work for the coordinator against O(n³) for the worker. A worker that
 * computed only a fraction f of the rows passes with probability f^k (k = 8: a worker that
 * skipped half the work passes 1 time in 256). The commit-then-challenge order matters: derived
 * positions (Fiat–Shamir) would let a cheater grind commitments.
 *
 * The timing the worker reports is recorded with the result; comparing it with the claimed GPU's
 * band in the catalog needs the GPU benchmark, which runs only where a GPU exists.
 */

export interface ChallengeMatrices {
  readonly size: number;
  readonly a: Uint32Array;
  readonly b: Uint32Array;
}

/** SplitMix32-style generator: small, fast, and the same on every platform. */
function generator(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x9e3779b9) >>> 0;
    let z = state;
    z = Math.imul(z ^ (z >>> 16), 0x85ebca6b) >>> 0;
    z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35) >>> 0;
    return (z ^ (z >>> 16)) >>> 0;
  };
}

export function challengeMatrices(seed: number, size: number): ChallengeMatrices {
  const next = generator(seed);
  const a = new Uint32Array(size * size);
  const b = new Uint32Array(size * size);
  for (let i = 0; i < a.length; i++) a[i] = next() & 0xffff;
  for (let i = 0; i < b.length; i++) b[i] = next() & 0xffff;
  return { size, a, b };
}

/** Row `row` of A×B, wrapping at 2^32. */
export function productRow(m: ChallengeMatrices, row: number): Uint32Array {
  const { size, a, b } = m;
  const out = new Uint32Array(size);
  for (let k = 0; k < size; k++) {
    const aik = a[row * size + k]!;
    if (aik === 0) continue;
    const offset = k * size;
    for (let j = 0; j < size; j++) out[j] = (out[j]! + Math.imul(aik, b[offset + j]!)) >>> 0;
  }
  return out;
}

/** `count` distinct row indices in [0, size), drawn with `random` (uniform in [0, 1)). */
export function pickRows(size: number, count: number, random: () => number): number[] {
  const rows = new Set<number>();
  while (rows.size < Math.min(count, size)) rows.add(Math.floor(random() * size));
  return [...rows].sort((x, y) => x - y);
}
