// The compute challenge end to end in memory: the worker's solver against the coordinator's checker.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { ChallengeSolver } from "./support/challenge-solver.ts";
import { ComputeChallenge } from "../src/coordinator/verification/compute-challenge.ts";

const clock = { now: () => 0 };
const options = { size: 32, openedRows: 8 };

describe("compute challenge", () => {
  it("passes a worker that did the whole product", async () => {
    const challenge = new ComputeChallenge(clock, options);
    const solver = new ChallengeSolver();
    const open = challenge.onCommit(await solver.solve(challenge.begin()));
    assert.ok("type" in open);
    const outcome = challenge.onReveal(solver.reveal(open));
    assert.equal(outcome.passed, true);
  });

  it("fails a worker whose revealed row differs from its commitment", async () => {
    const challenge = new ComputeChallenge(clock, options);
    const solver = new ChallengeSolver();
    const open = challenge.onCommit(await solver.solve(challenge.begin()));
    assert.ok("type" in open);
    const reveal = solver.reveal(open);
    reveal.rows[0]!.values[0] = (reveal.rows[0]!.values[0]! + 1) >>> 0;
    const outcome = challenge.onReveal(reveal);
    assert.deepEqual(outcome, {
      passed: false,
      reason: `row ${reveal.rows[0]!.index} does not match its commitment`,
    });
  });

  it("fails a worker that committed to rows it never computed", async () => {
    const challenge = new ComputeChallenge(clock, options);
    const verify = challenge.begin();
    const lazy = new ChallengeSolver();
    const commit = await lazy.solve({ ...verify, seed: (verify.seed + 1) >>> 0 });
    const open = challenge.onCommit(commit);
    assert.ok("type" in open);
    const outcome = challenge.onReveal(lazy.reveal(open));
    assert.equal(outcome.passed, false);
    assert.match((outcome as { reason: string }).reason, /is not the product/);
  });

  it("refuses a commitment of the wrong size or for another challenge", async () => {
    const challenge = new ComputeChallenge(clock, options);
    const verify = challenge.begin();
    const commit = await new ChallengeSolver().solve(verify);
    assert.deepEqual(challenge.onCommit({ ...commit, rowDigests: commit.rowDigests.slice(1) }), {
      passed: false,
      reason: "expected 32 row digests",
    });
    const other = new ComputeChallenge(clock, options);
    other.begin();
    assert.deepEqual(other.onCommit(commit), { passed: false, reason: "unexpected commitment" });
  });
});
