import { randomBytes, randomInt } from "node:crypto";
import type { Clock } from "../../core/clock.ts";
import { challengeMatrices, pickRows, productRow } from "../../core/verification.ts";
import { rowDigest } from "../../protocol/verification-digest.ts";
import type { z } from "zod";
import type {
  VerifyCommitMessage,
  VerifyMessage,
  VerifyOpenMessage,
  VerifyRevealMessage,
} from "../../protocol/worker-messages.ts";

export interface ComputeChallengeOptions {
  /** Matrix side (default 256: ~17 M multiply-adds for the worker). */
  size: number;
  /** Rows the coordinator opens and recomputes (default 8). */
  openedRows: number;
}

export type VerificationOutcome =
  | { passed: true; computeMs: number; size: number; openedRows: number }
  | { passed: false; reason: string };

type Pending = {
  challengeId: string;
  seed: number;
  startedAtMs: number;
  digests?: string[];
  opened?: number[];
  computeMs?: number;
};

/**
 * Runs one node's compute challenge (src/core/verification.ts) as a small state machine:
 * sent → committed → revealed. Any deviation — wrong challenge id, wrong digest count, a revealed
 * row that does not match its digest or the true product — fails the node with a reason.
 */
export class ComputeChallenge {
  private pending: Pending | undefined;

  constructor(
    private readonly clock: Clock,
    private readonly options: ComputeChallengeOptions,
  ) {}

  begin(): z.infer<typeof VerifyMessage> {
    const challenge = {
      challengeId: randomBytes(12).toString("base64url"),
      seed: randomInt(0, 2 ** 32 - 1),
      startedAtMs: this.clock.now(),
    };
    this.pending = challenge;
    return {
      type: "verify",
      challengeId: challenge.challengeId,
      seed: challenge.seed,
      size: this.options.size,
    };
  }

  onCommit(
    message: z.infer<typeof VerifyCommitMessage>,
  ): z.infer<typeof VerifyOpenMessage> | VerificationOutcome {
    const pending = this.pending;
    if (pending?.challengeId !== message.challengeId || pending.digests !== undefined)
      return this.fail("unexpected commitment");
    if (message.rowDigests.length !== this.options.size)
      return this.fail(`expected ${this.options.size} row digests`);
    pending.digests = message.rowDigests;
    pending.computeMs = message.computeMs;
    pending.opened = pickRows(
      this.options.size,
      this.options.openedRows,
      () => randomInt(0, 2 ** 32) / 2 ** 32,
    );
    return { type: "verify-open", challengeId: pending.challengeId, rows: pending.opened };
  }

  onReveal(message: z.infer<typeof VerifyRevealMessage>): VerificationOutcome {
    const pending = this.pending;
    if (
      pending?.challengeId !== message.challengeId ||
      pending.opened === undefined ||
      pending.digests === undefined
    ) {
      return this.fail("unexpected reveal");
    }
    const revealed = new Map(message.rows.map((r) => [r.index, r.values]));
    const matrices = challengeMatrices(pending.seed, this.options.size);
    for (const index of pending.opened) {
      const values = revealed.get(index);
      if (values?.length !== this.options.size) return this.fail(`row ${index} not revealed`);
      const claimed = Uint32Array.from(values);
      if (rowDigest(claimed) !== pending.digests[index])
        return this.fail(`row ${index} does not match its commitment`);
      const truth = productRow(matrices, index);
      if (!truth.every((v, j) => v === claimed[j]))
        return this.fail(`row ${index} is not the product`);
    }
    this.pending = undefined;
    return {
      passed: true,
      computeMs: pending.computeMs ?? 0,
      size: this.options.size,
      openedRows: pending.opened.length,
    };
  }

  private fail(reason: string): VerificationOutcome {
    this.pending = undefined;
    return { passed: false, reason };
  }
}
