import { z } from "zod";

/**
 * The `detail` of a proof-of-hardware history row (actions `verification-passed` and
 * `verification-failed`, issue 15): one entry per device proven, each with its size, timings and
 * verdict. Public: the explorer's node page renders it. Parsed leniently (fields added later pass
 * through), so an older explorer still reads a newer row; a row that does not parse is shown raw.
 */
export const ProofVerdict = z.enum([
  "passed",
  "too-slow",
  "too-fast",
  "inconsistent",
  "wrong-result",
  "late",
  "missing",
  "device-error",
  "unknown-model",
]);
export type ProofVerdict = z.infer<typeof ProofVerdict>;

export const ProofDeviceRecord = z.object({
  /** A GPU's UUID ("GPU-…") or a CPU core ("cpu:0"). */
  device: z.string(),
  kind: z.enum(["gpu", "cpu"]),
  claimedModel: z.string().nullable(),
  provenModel: z.string().nullable(),
  n: z.number(),
  k: z.number(),
  fillMiB: z.number(),
  computeMs: z.number().nullable(),
  elapsedMs: z.number().nullable(),
  tflops: z.number().nullable(),
  verdict: ProofVerdict,
  detail: z.string(),
});
export type ProofDeviceRecord = z.infer<typeof ProofDeviceRecord>;

export const ProofRecord = z.object({
  proofId: z.string(),
  /** One line: why it failed, or "proven as h100-80gb ×8". */
  reason: z.string(),
  devices: z.array(ProofDeviceRecord),
});
export type ProofRecord = z.infer<typeof ProofRecord>;

/** History actions whose detail is a {@link ProofRecord}. */
export const PROOF_ACTIONS: ReadonlySet<string> = new Set([
  "verification-passed",
  "verification-failed",
]);
