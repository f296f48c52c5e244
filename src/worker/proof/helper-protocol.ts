/**
 * The GPU prover helper's protocol: how the worker has one GPU prove its share of a proof of
 * hardware (src/core/hardware-proof.ts). The helper is a separate executable (`--gpu-prover`, a
 * CUDA program the worker ships), one process per GPU device and per proof, speaking
 * newline-delimited JSON on stdin/stdout (one object per line; stderr is free text, kept for the
 * error message when it fails):
 *
 *   worker → helper  {"prove":{"device":"GPU-…","seed":…,"n":…,"k":…,"fillMiB":…}}
 *   helper → worker  {"commit":{"root":"<base64url>","computeMs":…,"allocatedMiB":…}}
 *                    or {"error":"<one line>"} (then it exits)
 *   worker → helper  {"open":[{"row":…,"col":…},…]}
 *   helper → worker  {"reveal":[{"row":…,"col":…,"leaf":[…int32…],"path":["<base64url>",…]},…]}
 *   worker closes stdin → the helper frees the device and exits.
 *
 * On `prove` the helper allocates and fills `fillMiB` of the device's memory, computes
 * C = A(n×k)·B(k×n) from `seed` exactly as `proofRows` does, hashes its leaves and builds the
 * Merkle tree (`hashLeaf`, `ProofTree`), and answers the root and `computeMs`, its own measure of
 * the work (device time, from the operands' generation to the last leaf hash). It keeps what it
 * needs to answer `open` with each cell's whole leaf and `ProofTree.path` (the tree, and the
 * product or the means to recompute a leaf). Errors the helper knows of (no such device, out of
 * memory, a driver failure) are an `{"error"}` line; anything else the worker sees (an exit, a
 * line that is not one of these, silence past its time limit) is turned into a device error by
 * the worker (gpu-helper.ts), which kills the helper.
 */
import { z } from "zod";
import { Hash32, RevealedCell } from "../../protocol/worker-messages.ts";

/** A row, column or side of the product. */
const Cell = z
  .number()
  .int()
  .min(0)
  .max(1 << 20);

/** The first line the worker writes. */
export const HelperProveRequest = z.strictObject({
  prove: z.strictObject({
    device: z.string().min(1).max(128),
    seed: z.number().int().min(0).max(0xffffffff),
    n: Cell.min(1),
    k: z
      .number()
      .int()
      .min(1)
      .max(1 << 22),
    fillMiB: z
      .number()
      .int()
      .min(0)
      .max(1 << 22),
  }),
});
export type HelperProveRequest = z.infer<typeof HelperProveRequest>;

/** The second line the worker writes: the cells to reveal. */
export const HelperOpenRequest = z.strictObject({
  open: z.array(z.strictObject({ row: Cell, col: Cell })).max(4096),
});
export type HelperOpenRequest = z.infer<typeof HelperOpenRequest>;

/** The helper's answer to `prove`. */
export const HelperCommitLine = z.union([
  z.strictObject({
    commit: z.strictObject({
      root: Hash32,
      computeMs: z.number().min(0).max(86_400_000),
      allocatedMiB: z
        .number()
        .int()
        .min(0)
        .max(1 << 22),
    }),
  }),
  z.strictObject({ error: z.string().min(1).max(500) }),
]);
export type HelperCommitLine = z.infer<typeof HelperCommitLine>;

/** The helper's answer to `open`. */
export const HelperRevealLine = z.union([
  z.strictObject({
    reveal: z.array(RevealedCell).max(4096),
  }),
  z.strictObject({ error: z.string().min(1).max(500) }),
]);
export type HelperRevealLine = z.infer<typeof HelperRevealLine>;
