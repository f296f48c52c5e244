import { Worker } from "node:worker_threads";
import { ProofTree, leafCells, leafOfCell, type ProofWorkload } from "../../core/hardware-proof.ts";
import type { CpuThreadResult } from "./cpu-thread.ts";

/**
 * The largest CPU work a worker accepts for one core-device: more is not a CPU proof the policy
 * sizes (64×64×8192 by default) and would only tie up the machine. Multiply-adds, cells of C and
 * entries of B (held as bytes).
 */
export const CPU_PROOF_LIMITS = {
  maxMultiplyAdds: 2 ** 34,
  maxCells: 2 ** 24,
  maxOperandEntries: 2 ** 28,
};

/** One revealed cell: its whole leaf and the leaf's Merkle path (base64url). */
export interface RevealedCell {
  row: number;
  col: number;
  leaf: number[];
  path: string[];
}

/** A core-device's finished proof: what it commits to and what answers the opening. */
export class CpuDeviceProof {
  private tree: ProofTree | undefined;

  constructor(
    private readonly workload: ProofWorkload,
    private readonly result: CpuThreadResult,
  ) {}

  /** The thread that did the work (never the main thread's 0). */
  get threadId(): number {
    return this.result.threadId;
  }

  get computeMs(): number {
    return this.result.computeMs;
  }

  /** MiB the work held: the product (int32) and B (int8). */
  get allocatedMiB(): number {
    const { n, k } = this.workload;
    return Math.ceil((n * n * 4 + n * k) / (1024 * 1024));
  }

  get root(): string {
    return base64url(this.proofTree().root);
  }

  /** Each cell inside C with its leaf and path; cells outside C are left out. */
  reveal(cells: readonly { row: number; col: number }[]): RevealedCell[] {
    return revealCells(this.workload.n, this.result.rows, this.proofTree(), cells);
  }

  /** The tree over the thread's leaf hashes, built once (leafCount − 1 hashes). */
  private proofTree(): ProofTree {
    this.tree ??= new ProofTree(this.result.leaves);
    return this.tree;
  }
}

/**
 * Each cell of `cells` inside the n×n product `rows` (row-major) with its whole leaf and its path
 * in `tree`; cells outside are left out. (The fixture GPU helper answers its openings with it too.)
 */
export function revealCells(
  n: number,
  rows: Int32Array,
  tree: ProofTree,
  cells: readonly { row: number; col: number }[],
): RevealedCell[] {
  return cells
    .filter(({ row, col }) => row < n && col < n)
    .map(({ row, col }) => {
      const { leaf } = leafOfCell(n, row, col);
      return {
        row,
        col,
        leaf: Array.from(leafCells(n, rows, leaf)),
        path: tree.path(leaf).map(base64url),
      };
    });
}

/** Why a CPU workload is refused, or undefined when it is within `CPU_PROOF_LIMITS`. */
export function cpuWorkloadRefusal(w: ProofWorkload): string | undefined {
  const { n, k } = w;
  if (n * n * k > CPU_PROOF_LIMITS.maxMultiplyAdds || n * n > CPU_PROOF_LIMITS.maxCells)
    return `work too big for a CPU core (${n}×${n}×${k})`;
  if (n * k > CPU_PROOF_LIMITS.maxOperandEntries)
    return `operands too big for a CPU core (${n}×${k})`;
  return undefined;
}

/** A running core-device proof: its result, and a way to stop it (a newer proof, a disconnect). */
export interface CpuProofRun {
  done: Promise<{ ok: true; proof: CpuDeviceProof } | { ok: false; error: string }>;
  cancel(): void;
}

/**
 * Proves one core-device in its own worker thread, so a node's cores work in parallel and the
 * main thread (heartbeats) stays free. The thread is terminated after `timeoutMs`.
 */
export function proveOnCpu(workload: ProofWorkload, timeoutMs: number): CpuProofRun {
  const thread = new Worker(THREAD_BOOT, {
    eval: true,
    workerData: { seed: workload.seed, n: workload.n, k: workload.k },
  });
  let settled = false;
  let cancelled = false;
  const done = new Promise<Awaited<CpuProofRun["done"]>>((resolve) => {
    const settle = (value: Awaited<CpuProofRun["done"]>) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      void thread.terminate();
      resolve(value);
    };
    const timer = setTimeout(
      () => settle({ ok: false, error: `CPU proof did not finish within ${timeoutMs} ms` }),
      timeoutMs,
    );
    thread.once("message", (result: CpuThreadResult) =>
      settle({ ok: true, proof: new CpuDeviceProof(workload, result) }),
    );
    thread.once("error", (error) =>
      settle({ ok: false, error: `CPU proof failed: ${error.message}` }),
    );
    thread.once("exit", (code) =>
      settle({
        ok: false,
        error: cancelled ? "CPU proof cancelled" : `CPU proof thread exited with code ${code}`,
      }),
    );
  });
  return {
    done,
    cancel: () => {
      cancelled = true;
      void thread.terminate();
    },
  };
}

/**
 * The thread's entry. Compiled (dist/), the thread imports its body's JavaScript. Run as source,
 * worker threads do not inherit the TypeScript loader that `bin/tandem.js` registers (they do
 * inherit `--import tsx`), so the thread registers it before loading its body.
 */
const THREAD_BOOT = import.meta.url.endsWith(".js")
  ? `import(${JSON.stringify(new URL("./cpu-thread.js", import.meta.url).href)})`
  : `import(${JSON.stringify(import.meta.resolve("tsx/esm/api"))})
  .then(({ register }) => { register(); return import(${JSON.stringify(new URL("./cpu-thread.ts", import.meta.url).href)}); })`;

function base64url(bytes: Uint8Array): string {
  return Buffer.from(bytes).toString("base64url");
}
