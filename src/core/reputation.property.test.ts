/**
 * Properties of the reputation formula over random histories: bounded, monotone in each piece of
 * evidence, and an old failure weighs less than the same failure new.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import fc from "fast-check";
import {
  REPUTATION_HORIZON_DAYS,
  reputation,
  type ReputationInputs,
  type ReputationLease,
  type ReputationLeaseOutcome,
} from "./reputation.ts";

const DAY_MS = 86_400_000;
const NOW_MS = Date.UTC(2025, 5, 1);
/** Ages up to a little past the horizon, and a few events stamped in the future (clock skew). */
const atMs = fc.integer({ min: -2 * DAY_MS, max: (REPUTATION_HORIZON_DAYS + 30) * DAY_MS });
const outcome = fc.constantFrom<ReputationLeaseOutcome>("completed", "lost", "lapsed", "drained");

const lease = fc.record({
  atMs: atMs.map((age) => NOW_MS - age),
  outcome,
  slashed: fc.boolean(),
});
const verification = fc.record({ atMs: atMs.map((age) => NOW_MS - age), passed: fc.boolean() });
const inputs: fc.Arbitrary<ReputationInputs> = fc.record({
  uptime30d: fc.double({ min: 0, max: 1, noNaN: true }),
  registeredAtMs: fc.integer({ min: 0, max: 400 * DAY_MS }).map((age) => NOW_MS - age),
  leases: fc.array(lease, { maxLength: 40 }),
  verifications: fc.array(verification, { maxLength: 20 }),
  nowMs: fc.constant(NOW_MS),
});

const score = (i: ReputationInputs) => reputation(i).score;
const withLease = (i: ReputationInputs, l: ReputationLease): ReputationInputs => ({
  ...i,
  leases: [...i.leases, l],
});

describe("reputation properties", () => {
  it("stays within 0..100 with one decimal, its components within their weights", () => {
    fc.assert(
      fc.property(inputs, (i) => {
        const r = reputation(i);
        assert.ok(r.score >= 0 && r.score <= 100, `score ${r.score}`);
        assert.equal(Math.round(r.score * 10) / 10, r.score);
        for (const c of Object.values(r.components)) {
          assert.ok(c.value >= 0 && c.value <= 1 && c.points <= c.weight, JSON.stringify(c));
        }
      }),
    );
  });

  it("never rises with a lost or lapsed lease, a slash or a failed verification", () => {
    fc.assert(
      fc.property(
        inputs,
        atMs,
        fc.constantFrom<ReputationLeaseOutcome>("lost", "lapsed"),
        (i, age, bad) => {
          const at = NOW_MS - age;
          assert.ok(
            score(withLease(i, { atMs: at, outcome: bad, slashed: bad === "lost" })) <= score(i),
          );
          assert.ok(
            score(withLease(i, { atMs: at, outcome: "drained", slashed: true })) <= score(i),
          );
          assert.ok(
            score({ ...i, verifications: [...i.verifications, { atMs: at, passed: false }] }) <=
              score(i),
          );
        },
      ),
    );
  });

  it("never falls with a clean completed lease or a passed verification", () => {
    fc.assert(
      fc.property(inputs, atMs, (i, age) => {
        const at = NOW_MS - age;
        assert.ok(
          score(withLease(i, { atMs: at, outcome: "completed", slashed: false })) >= score(i),
        );
        assert.ok(
          score({ ...i, verifications: [...i.verifications, { atMs: at, passed: true }] }) >=
            score(i),
        );
      }),
    );
  });

  it("ignores a drained lease without a slash", () => {
    fc.assert(
      fc.property(inputs, atMs, (i, age) => {
        const drained = withLease(i, { atMs: NOW_MS - age, outcome: "drained", slashed: false });
        assert.equal(score(drained), score(i));
      }),
    );
  });

  it("never falls with higher uptime", () => {
    fc.assert(
      fc.property(inputs, fc.double({ min: 0, max: 1, noNaN: true }), (i, more) => {
        const higher = Math.min(1, i.uptime30d + more);
        assert.ok(score({ ...i, uptime30d: higher }) >= score(i));
      }),
    );
  });

  it("weighs the same failure less the older it is", () => {
    fc.assert(
      fc.property(
        inputs,
        fc.constantFrom<ReputationLeaseOutcome>("lost", "lapsed"),
        atMs,
        atMs,
        (i, bad, a, b) => {
          const [newer, older] = a <= b ? [a, b] : [b, a];
          const failure = (age: number) =>
            withLease(i, { atMs: NOW_MS - age, outcome: bad, slashed: bad === "lost" });
          assert.ok(score(failure(older)) >= score(failure(newer)));
        },
      ),
    );
  });

  it("recovers as a failure ages: strictly, by whole points, over three half-lives", () => {
    const base: ReputationInputs = {
      uptime30d: 1,
      registeredAtMs: NOW_MS - 400 * DAY_MS,
      leases: [],
      verifications: [],
      nowMs: NOW_MS,
    };
    const failed = (ageDays: number) =>
      score(withLease(base, { atMs: NOW_MS - ageDays * DAY_MS, outcome: "lost", slashed: true }));
    assert.ok(failed(0) + 1 < failed(30));
    assert.ok(failed(30) + 1 < failed(90));
    assert.equal(failed(REPUTATION_HORIZON_DAYS + 1), score(base));
  });
});
