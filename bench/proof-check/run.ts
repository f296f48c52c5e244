/**
 * The coordinator's cost of checking proofs of hardware (issue 15: ≤ 5 ms of CPU per proof;
 * 10,000 nodes re-proven hourly ≤ 2 % of one core).
 *
 * A check is what the coordinator does with a reveal (src/core/hardware-proof.ts): per opened
 * cell, hash the revealed leaf, walk its Merkle path to the committed root, and recompute the cell
 * from the seed (k multiply-adds); then judge the timing. The openings here are built the way an
 * honest worker's are for a production-size H100 workload (n for 5 s at peak, k = 65,536, so a
 * path of ⌈log2(n·⌈n/256⌉)⌉ hashes): the opened cell is the true product, the other cells and the
 * siblings are arbitrary and the root is where they lead — the coordinator's work is the same.
 *
 *   node --import tsx bench/proof-check/run.ts [--proofs 200] [--model h100-80gb]
 */
import { randomBytes, randomInt } from "node:crypto";
import { loadavg } from "node:os";
import { parseArgs } from "node:util";
import { gpuModelById } from "../../src/core/gpu-catalog.ts";
import {
  DEFAULT_PROOF_POLICY,
  PROOF_LEAF_CELLS,
  gpuWorkload,
  hashLeaf,
  judgeTiming,
  leafOfCell,
  peakFlopsPerMs,
  proofCell,
  proofFlops,
  proofLeafCount,
  rootFromPath,
  type ProofWorkload,
} from "../../src/core/hardware-proof.ts";

const { values } = parseArgs({
  options: {
    proofs: { type: "string", default: "200" },
    model: { type: "string", default: "h100-80gb" },
  },
});
const model = gpuModelById(values.model);
if (model === undefined) throw new Error(`unknown model ${values.model}`);
const policy = DEFAULT_PROOF_POLICY;

interface Opening {
  row: number;
  col: number;
  leaf: Int32Array;
  path: Uint8Array[];
  root: Uint8Array;
}

/** An opening as an honest worker would send it (see the header). */
function opening(w: ProofWorkload): Opening {
  const row = randomInt(w.n);
  const col = randomInt(w.n);
  const { leaf: index, offset } = leafOfCell(w.n, row, col);
  const leaf = Int32Array.from({ length: PROOF_LEAF_CELLS }, () => randomInt(-4, 4));
  leaf[offset] = proofCell(w, row, col);
  const depth = Math.ceil(Math.log2(proofLeafCount(w.n)));
  const path = Array.from({ length: depth }, () => new Uint8Array(randomBytes(32)));
  const count = 2 ** depth; // a full tree: every level has a sibling
  const root = rootFromPath(hashLeaf(leaf), index, count, path)!;
  return { row, col, leaf, path, root };
}

/** What the coordinator does with one device's reveal; false if anything is off. */
function check(w: ProofWorkload, openings: Opening[]): boolean {
  const depthCount = 2 ** openings[0]!.path.length;
  for (const o of openings) {
    const { leaf: index, offset } = leafOfCell(w.n, o.row, o.col);
    const root = rootFromPath(hashLeaf(o.leaf), index, depthCount, o.path);
    if (root === undefined || !root.every((b, i) => b === o.root[i])) return false;
    if (o.leaf[offset] !== proofCell(w, o.row, o.col)) return false;
  }
  const peak = peakFlopsPerMs(model, policy);
  const computeMs = proofFlops(w) / (0.7 * peak);
  return judgeTiming(w, peak, computeMs, computeMs + 500, policy).ok;
}

const count = Number(values.proofs);
const loadStart = loadavg()[0];
const proofs = Array.from({ length: count }, () => {
  const w = gpuWorkload(model, policy, randomInt(2 ** 32));
  return { w, openings: Array.from({ length: policy.openedCells }, () => opening(w)) };
});
process.stderr.write(
  `built ${count} proofs of ${model.id} (n ${proofs[0]!.w.n}, k ${proofs[0]!.w.k})\n`,
);
for (const p of proofs.slice(0, 10)) check(p.w, p.openings); // warm the JIT
const cpuMs: number[] = [];
for (const p of proofs) {
  const before = process.cpuUsage();
  if (!check(p.w, p.openings)) throw new Error("an honest proof failed its check");
  const used = process.cpuUsage(before);
  cpuMs.push((used.user + used.system) / 1000);
}
cpuMs.sort((a, b) => a - b);
const at = (q: number) => cpuMs[Math.min(cpuMs.length - 1, Math.floor(q * cpuMs.length))]!;
const mean = cpuMs.reduce((a, b) => a + b, 0) / cpuMs.length;
// 10,000 nodes proven once an hour, one proof per GPU: the share of one core.
const coreShare = (gpusPerNode: number) => (10_000 * gpusPerNode * mean) / 3_600_000;
console.log(
  JSON.stringify({
    model: model.id,
    n: proofs[0]!.w.n,
    k: proofs[0]!.w.k,
    openedCells: policy.openedCells,
    proofs: count,
    cpuMsPerProof: { p50: at(0.5), p99: at(0.99), mean },
    tenThousandNodesHourly: {
      oneGpuEach: `${(coreShare(1) * 100).toFixed(2)} % of a core`,
      eightGpusEach: `${(coreShare(8) * 100).toFixed(2)} % of a core`,
    },
    loadAvg1m: { start: loadStart, end: loadavg()[0] },
  }),
);
