/**
 * The body of one CPU core-device's proof, run in its own worker thread (cpu-prover.ts): the
 * product with the reference `proofRows`, every leaf hashed, timed around both. It posts the
 * product (transferred, not copied), the leaf hashes and the time, and ends.
 */
import { parentPort, threadId, workerData } from "node:worker_threads";
import {
  hashLeaf,
  leafCells,
  proofLeafCount,
  proofRows,
  type ProofWorkload,
} from "../../core/hardware-proof.ts";

/** What the thread posts back. */
export interface CpuThreadResult {
  rows: Int32Array;
  leaves: Uint8Array[];
  computeMs: number;
  threadId: number;
}

const workload = workerData as ProofWorkload;
const started = performance.now();
const rows = proofRows(workload, 0, workload.n);
const leaves: Uint8Array[] = [];
for (let leaf = 0; leaf < proofLeafCount(workload.n); leaf++)
  leaves.push(hashLeaf(leafCells(workload.n, rows, leaf)));
const result: CpuThreadResult = {
  rows,
  leaves,
  computeMs: performance.now() - started,
  threadId,
};
parentPort?.postMessage(result, [rows.buffer as ArrayBuffer]);
