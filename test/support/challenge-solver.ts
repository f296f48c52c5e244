import type { z } from "zod";
import { challengeMatrices, productRow } from "../../src/core/verification.ts";
import { rowDigest } from "../../src/protocol/verification-digest.ts";
import type {
  VerifyCommitMessage,
  VerifyMessage,
  VerifyOpenMessage,
  VerifyRevealMessage,
} from "../../src/protocol/worker-messages.ts";

/**
 * The old compute challenge's worker side, kept only for the tests of the coordinator's
 * ComputeChallenge (simulated workers) until the proof of hardware replaces it there too: the real
 * worker answers `prove` (src/worker/proof/). Delete with the deprecated verify messages.
 */
export class ChallengeSolver {
  private product: { challengeId: string; rows: Uint32Array[] } | undefined;

  /** Multiplies in slices, yielding between them, so heartbeats keep flowing meanwhile. */
  async solve(
    message: z.infer<typeof VerifyMessage>,
  ): Promise<z.infer<typeof VerifyCommitMessage>> {
    const started = performance.now();
    const matrices = challengeMatrices(message.seed, message.size);
    const rows: Uint32Array[] = [];
    for (let i = 0; i < message.size; i++) {
      rows.push(productRow(matrices, i));
      if (i % 16 === 15) await new Promise((resolve) => setImmediate(resolve));
    }
    const computeMs = performance.now() - started;
    this.product = { challengeId: message.challengeId, rows };
    return {
      type: "verify-commit",
      challengeId: message.challengeId,
      rowDigests: rows.map(rowDigest),
      computeMs,
    };
  }

  reveal(message: z.infer<typeof VerifyOpenMessage>): z.infer<typeof VerifyRevealMessage> {
    const product = this.product?.challengeId === message.challengeId ? this.product : undefined;
    this.product = undefined;
    return {
      type: "verify-reveal",
      challengeId: message.challengeId,
      rows: message.rows.flatMap((index) => {
        const row = product?.rows[index];
        return row === undefined ? [] : [{ index, values: Array.from(row) }];
      }),
    };
  }
}
