/**
 * The coordinator's CPU per proof of hardware check (issue 15: ≤ 5 ms; 10,000 nodes re-proven
 * hourly ≤ 2 % of one core). Times `checkOpenedCells` — what a reveal costs the coordinator: per
 * opened cell, the leaf's hash, its Merkle path to the root and the cell recomputed from the seed
 * (k multiply-adds) — at the default policy's sizes (DEFAULT_PROOF_POLICY) for an 8×H100 node
 * (8 cells per GPU, k 65536, a 194k-wide product: 28-hash paths) and a 64-core CPU node (8 cells
 * in all across its cores, k 8192, 64×64). The products themselves are far too big to compute here, so each
 * opened cell gets a leaf holding its true value and a random path, and its device commits to the
 * root that path leads to: every check runs in full, as for an honest worker.
 *
 *   node --import tsx bench/proof-check.ts [--rounds 200] [--gpu-k 65536] [--cpu-k 8192] [--cells 8]
 *
 * The options change the policy from the default, to see what a smaller inner dimension (the
 * check's cost is k multiply-adds per cell) or fewer cells would cost.
 */
import { randomBytes, randomInt } from "node:crypto";
import { parseArgs } from "node:util";
import { checkOpenedCells } from "../src/coordinator/verification/proof-cells.ts";
import { GPU_CATALOG } from "../src/core/gpu-catalog.ts";
import {
  DEFAULT_PROOF_POLICY,
  PROOF_LEAF_CELLS,
  cpuWorkload,
  gpuWorkload,
  hashLeaf,
  leafOfCell,
  proofCell,
  proofLeafCount,
  rootFromPath,
  type ProofWorkload,
} from "../src/core/hardware-proof.ts";

const { values } = parseArgs({
  options: {
    rounds: { type: "string", default: "200" },
    "gpu-k": { type: "string", default: String(DEFAULT_PROOF_POLICY.gpuK) },
    "cpu-k": { type: "string", default: String(DEFAULT_PROOF_POLICY.cpuK) },
    cells: { type: "string", default: String(DEFAULT_PROOF_POLICY.openedCells) },
  },
});
const rounds = Number(values.rounds);
const policy = {
  ...DEFAULT_PROOF_POLICY,
  gpuK: Number(values["gpu-k"]),
  cpuK: Number(values["cpu-k"]),
  openedCells: Number(values.cells),
};

interface Case {
  name: string;
  /** Cells the coordinator opens on such a node (proof-session.ts openCells). */
  cells: number;
  workload: () => ProofWorkload;
}

const h100 = GPU_CATALOG.find((m) => m.id === "h100-80gb")!;
const cases: Case[] = [
  {
    name: "8×H100",
    cells: 8 * policy.openedCells, // on each GPU
    workload: () => gpuWorkload(h100, policy, randomInt(2 ** 32 - 1)),
  },
  {
    name: "64-core CPU",
    cells: policy.openedCells, // across the node's cores
    workload: () => cpuWorkload(policy, randomInt(2 ** 32 - 1)),
  },
];

/** A revealed cell that checks in full, and the root its device committed to. */
function honestCell(device: string, w: ProofWorkload) {
  const row = randomInt(w.n);
  const col = randomInt(w.n);
  const { leaf, offset } = leafOfCell(w.n, row, col);
  const start = col - offset;
  const cells = Array.from({ length: Math.min(w.n, start + PROOF_LEAF_CELLS) - start }, () =>
    randomInt(-4, 4),
  );
  cells[offset] = proofCell(w, row, col);
  const leafCount = proofLeafCount(w.n);
  // A path of the right length: one sibling per level where the leaf's index is not promoted.
  const path: Uint8Array[] = [];
  for (let index = leaf, width = leafCount; width > 1; width = Math.ceil(width / 2)) {
    if (!(index % 2 === 0 && index + 1 >= width)) path.push(randomBytes(32));
    index = Math.floor(index / 2);
  }
  const root = rootFromPath(hashLeaf(Int32Array.from(cells)), leaf, leafCount, path)!;
  return {
    workload: w,
    opened: { device, row, col },
    revealed: {
      device,
      row,
      col,
      leaf: cells,
      path: path.map((h) => Buffer.from(h).toString("base64url")),
    },
    root,
  };
}

console.log(
  `proof check, ${rounds} rounds per case, ${policy.openedCells} cells per GPU and per CPU node`,
);
for (const c of cases) {
  const times: number[] = [];
  let pathLength = 0;
  for (let round = 0; round < rounds; round++) {
    const committed = new Map<string, ProofWorkload & { root: Uint8Array }>();
    const opened = [];
    const revealed = [];
    // One root per opened cell (its own random path): the same work as several cells of a device.
    for (let i = 0; i < c.cells; i++) {
      const device = `d${i}`;
      const cell = honestCell(device, c.workload());
      committed.set(device, { ...cell.workload, root: cell.root });
      opened.push(cell.opened);
      revealed.push(cell.revealed);
      pathLength = cell.revealed.path.length;
    }
    const cpuBefore = process.cpuUsage();
    const wrong = checkOpenedCells(opened, revealed, (device) => committed.get(device)!);
    const cpu = process.cpuUsage(cpuBefore);
    if (wrong.size > 0) throw new Error(`an honest cell failed: ${[...wrong.values()][0]}`);
    times.push((cpu.user + cpu.system) / 1000);
  }
  times.sort((a, b) => a - b);
  const at = (q: number) => times[Math.min(times.length - 1, Math.floor(q * times.length))]!;
  const w = c.workload();
  const mean = times.reduce((a, b) => a + b, 0) / times.length;
  console.log(
    `${c.name}: n ${w.n}, k ${w.k}, ${c.cells} cells, ` +
      `paths of ${pathLength}: CPU ms per check p50 ${at(0.5).toFixed(2)}, p90 ${at(0.9).toFixed(2)}, ` +
      `mean ${mean.toFixed(2)}; 10,000 nodes hourly: ${(((10_000 * mean) / 3_600_000) * 100).toFixed(3)} % of a core`,
  );
}
