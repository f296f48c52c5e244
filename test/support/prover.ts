/**
 * A test worker's prover: answers a `prove` with the real product (core `proofRows`) and its real
 * Merkle tree, and a `prove-open` with the real leaves and paths — then lets a test tamper with
 * either. For a GPU device it is a fake at the GPU port (no GPU exists here): it computes on the
 * CPU and reports the `computeMs` the claimed card would take at `gpuTflops`. A CPU device reports
 * `computeMs` 0: the coordinator's own clock of the exchange is what bounds it.
 */
import {
  ProofTree,
  hashLeaf,
  leafCells,
  leafOfCell,
  proofFlops,
  proofLeafCount,
  proofRows,
} from "../../src/core/hardware-proof.ts";
import type { z } from "zod";
import type {
  ProveCommitMessage,
  ProveMessage,
  ProveOpenMessage,
  ProveRevealMessage,
} from "../../src/protocol/worker-messages.ts";
import type { WorkerSocket } from "./devices.ts";

type Prove = z.infer<typeof ProveMessage>;
type Commit = z.infer<typeof ProveCommitMessage>;
type Reveal = z.infer<typeof ProveRevealMessage>;

interface Worked {
  rows: Int32Array;
  tree: ProofTree;
}

export class FixtureProver {
  private readonly worked = new Map<string, Worked>();

  constructor(readonly prove: Prove) {
    for (const d of prove.devices) {
      const rows = proofRows(d, 0, d.n);
      const leaves = Array.from({ length: proofLeafCount(d.n) }, (_, leaf) =>
        hashLeaf(leafCells(d.n, rows, leaf)),
      );
      this.worked.set(d.device, { rows, tree: new ProofTree(leaves) });
    }
  }

  /** The honest commitment; a GPU shows `gpuTflops` (its card's speed). */
  commit(gpuTflops = 0): Commit {
    return {
      type: "prove-commit",
      proofId: this.prove.proofId,
      devices: this.prove.devices.map((d) => ({
        device: d.device,
        root: Buffer.from(this.worked.get(d.device)!.tree.root).toString("base64url"),
        computeMs: d.kind === "gpu" ? proofFlops(d) / (gpuTflops * 1e9) : 0,
        allocatedMiB: d.fillMiB,
      })),
    };
  }

  /** The honest reveal of the opened cells. */
  reveal(open: z.infer<typeof ProveOpenMessage>): Reveal {
    return {
      type: "prove-reveal",
      proofId: open.proofId,
      cells: open.cells.map(({ device, row, col }) => {
        const d = this.prove.devices.find((x) => x.device === device)!;
        const { rows, tree } = this.worked.get(device)!;
        const { leaf } = leafOfCell(d.n, row, col);
        return {
          device,
          row,
          col,
          leaf: [...leafCells(d.n, rows, leaf)],
          path: tree.path(leaf).map((h) => Buffer.from(h).toString("base64url")),
        };
      }),
    };
  }
}

/** Waits for the coordinator's `prove` on `worker`. */
export async function nextProve(worker: Pick<WorkerSocket, "next">): Promise<Prove> {
  const message = await worker.next();
  if (message.type !== "prove") throw new Error(`expected prove, got ${message.type}`);
  return message;
}

/** Waits for the coordinator's `prove-open`. */
export async function nextOpen(
  worker: Pick<WorkerSocket, "next">,
): Promise<z.infer<typeof ProveOpenMessage>> {
  const message = await worker.next();
  if (message.type !== "prove-open") throw new Error(`expected prove-open, got ${message.type}`);
  return message;
}

/**
 * Answers the coordinator's next proof honestly (GPUs at `gpuTflops`), with `beforeCommit` run
 * once the work is done (a test moves its manual clock there).
 */
export async function proveHonestly(
  worker: Pick<WorkerSocket, "next" | "send">,
  gpuTflops = 0,
  beforeCommit: () => void = () => undefined,
): Promise<void> {
  const prover = new FixtureProver(await nextProve(worker));
  beforeCommit();
  worker.send(prover.commit(gpuTflops));
  worker.send(prover.reveal(await nextOpen(worker)));
}
