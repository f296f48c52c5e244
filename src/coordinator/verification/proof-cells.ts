/**
 * Checks the cells a worker revealed against its commitment: for each opened cell, the revealed
 * leaf is the one that holds it (its length is that leaf's), the leaf hashes along its path to the
 * committed root, and the cell's value is the product's own (k multiply-adds from the seed). The
 * coordinator's whole cost of a proof is here: `openedCells` × (k multiply-adds + one path).
 */
import {
  PROOF_LEAF_CELLS,
  hashLeaf,
  leafOfCell,
  proofCell,
  proofLeafCount,
  rootFromPath,
} from "../../core/hardware-proof.ts";
import type { ProveRevealMessage } from "../../protocol/worker-messages.ts";
import type { z } from "zod";

export interface OpenedCell {
  device: string;
  row: number;
  col: number;
}

type Revealed = z.infer<typeof ProveRevealMessage>["cells"][number];

/** What a device committed to: its workload and the root of its product. */
export interface Committed {
  seed: number;
  n: number;
  k: number;
  root: Uint8Array;
}

/** The devices with a wrong cell, each with why (the first wrong cell found). */
export function checkOpenedCells(
  opened: readonly OpenedCell[],
  revealed: readonly Revealed[],
  committed: (device: string) => Committed,
): Map<string, string> {
  const byCell = new Map(revealed.map((r) => [cellKey(r), r]));
  const wrong = new Map<string, string>();
  for (const cell of opened) {
    if (wrong.has(cell.device)) continue;
    const problem = checkCell(cell, byCell.get(cellKey(cell)), committed(cell.device));
    if (problem !== undefined) wrong.set(cell.device, `cell (${cell.row}, ${cell.col}) ${problem}`);
  }
  return wrong;
}

function checkCell(
  cell: OpenedCell,
  revealed: Revealed | undefined,
  w: Committed,
): string | undefined {
  if (revealed === undefined) return "not revealed";
  const { leaf, offset } = leafOfCell(w.n, cell.row, cell.col);
  const start = cell.col - offset;
  const width = Math.min(w.n, start + PROOF_LEAF_CELLS) - start;
  if (revealed.leaf.length !== width)
    return `revealed with a leaf of ${revealed.leaf.length} cells, not ${width}`;
  const path = revealed.path.map((hash) => Buffer.from(hash, "base64url"));
  const root = rootFromPath(
    hashLeaf(Int32Array.from(revealed.leaf)),
    leaf,
    proofLeafCount(w.n),
    path,
  );
  if (root === undefined) return "revealed with a path of the wrong length";
  if (!Buffer.from(root).equals(w.root)) return "does not lead to the committed root";
  const truth = proofCell(w, cell.row, cell.col);
  if (revealed.leaf[offset] !== truth)
    return `is ${revealed.leaf[offset]}, not the product's ${truth}`;
  return undefined;
}

function cellKey(cell: OpenedCell): string {
  return `${cell.device}\u0000${cell.row}\u0000${cell.col}`;
}
