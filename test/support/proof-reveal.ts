import assert from "node:assert/strict";
import type { z } from "zod";
import {
  hashLeaf,
  leafOfCell,
  proofCell,
  proofLeafCount,
  rootFromPath,
} from "../../src/core/hardware-proof.ts";
import type {
  ProveCommitMessage,
  ProveMessage,
  ProveRevealMessage,
} from "../../src/protocol/worker-messages.ts";

type Device = z.infer<typeof ProveMessage>["devices"][number];
type Commit = z.infer<typeof ProveCommitMessage>;

/** The committed root of `device`, failing when it answered an error or nothing. */
export function committedRoot(commit: Commit | undefined, device: string) {
  const entry = commit?.devices.find((d) => d.device === device);
  assert.ok(
    entry !== undefined && "root" in entry,
    `no commitment for ${device}: ${JSON.stringify(entry)}`,
  );
  return entry;
}

/** The error `device` answered, failing when it committed. */
export function deviceError(commit: Commit | undefined, device: string): string {
  const entry = commit?.devices.find((d) => d.device === device);
  assert.ok(
    entry !== undefined && "error" in entry,
    `no error for ${device}: ${JSON.stringify(entry)}`,
  );
  return entry.error;
}

/** A few cells of each device: corners and a cell past the first leaf of a row where there is one. */
export function cellsToOpen(devices: readonly Device[]) {
  return devices.flatMap((d) =>
    [
      [0, 0],
      [d.n - 1, d.n - 1],
      [Math.min(7, d.n - 1), Math.min(d.n - 1, 260)],
      [Math.max(0, d.n - 2), Math.min(3, d.n - 1)],
    ].map(([row, col]) => ({ device: d.device, row: row!, col: col! })),
  );
}

/**
 * Checks every revealed cell as the coordinator does: the value is `proofCell`'s, and the leaf's
 * path leads to the device's committed root. `expected` cells must all be there.
 */
export function assertRevealChecksOut(
  devices: readonly Device[],
  commit: Commit | undefined,
  reveal: z.infer<typeof ProveRevealMessage>,
  expected: number,
): void {
  assert.equal(reveal.cells.length, expected);
  for (const cell of reveal.cells) {
    const d = devices.find((x) => x.device === cell.device);
    assert.ok(d !== undefined, `a cell of an unknown device ${cell.device}`);
    const { leaf, offset } = leafOfCell(d.n, cell.row, cell.col);
    assert.equal(cell.leaf[offset], proofCell(d, cell.row, cell.col));
    const root = rootFromPath(
      hashLeaf(Int32Array.from(cell.leaf)),
      leaf,
      proofLeafCount(d.n),
      cell.path.map((h) => Buffer.from(h, "base64url")),
    );
    assert.ok(root !== undefined, "a path of the wrong length");
    assert.equal(Buffer.from(root).toString("base64url"), committedRoot(commit, d.device).root);
  }
}
