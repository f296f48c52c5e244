import assert from "node:assert/strict";
import { test } from "node:test";
import fc from "fast-check";
import { ErrorCode, TandemError } from "./errors.ts";
import { money, units } from "./money.ts";
import {
  DEFAULT_STAKE_MINIMUMS,
  commissionBpsOf,
  minimumStake,
  percentOf,
  proRata,
  unstakeTransition,
  withdrawTransition,
} from "./stake.ts";

const code = (c: ErrorCode) => (e: unknown) => e instanceof TandemError && e.code === c;

test("the minimum is per GPU by catalog tier, a CPU node pays its own figure", () => {
  const min = (gpuModel: string | null, gpuCount: number) =>
    minimumStake({ gpuModel, gpuCount }, DEFAULT_STAKE_MINIMUMS);
  assert.equal(min("h100-80gb", 8), money("8000"));
  assert.equal(min("rtx-4090", 2), money("200"));
  assert.equal(min(null, 0), money("10"));
  assert.equal(min("rtx-4090", 0), money("10"));
  // A model the catalog does not know pays the data-center figure.
  assert.equal(min("gtx-1080", 1), money("1000"));
});

test("unstake once, withdraw only after the cooldown", () => {
  assert.equal(unstakeTransition("active"), "unbonding");
  assert.throws(() => unstakeTransition("unbonding"), code(ErrorCode.INVALID_TRANSITION));
  assert.throws(() => unstakeTransition("withdrawn"), code(ErrorCode.INVALID_TRANSITION));
  assert.throws(
    () => withdrawTransition("unbonding", 999, 1000),
    code(ErrorCode.INVALID_TRANSITION),
  );
  assert.equal(withdrawTransition("unbonding", 1000, 1000), "withdrawn");
  assert.throws(() => withdrawTransition("active", 5000, null), code(ErrorCode.INVALID_TRANSITION));
  assert.throws(
    () => withdrawTransition("withdrawn", 5000, 1000),
    code(ErrorCode.INVALID_TRANSITION),
  );
});

test("commission percents in basis points: two decimals at most, 100 % at most", () => {
  assert.equal(commissionBpsOf("10"), 1000);
  assert.equal(commissionBpsOf("12.5"), 1250);
  assert.equal(commissionBpsOf("0.25"), 25);
  assert.equal(commissionBpsOf("100"), 10_000);
  assert.equal(commissionBpsOf("0"), 0);
  for (const bad of ["100.01", "101", "-1", "1.234", "", "1e2", " 5", "abc", "5."])
    assert.throws(() => commissionBpsOf(bad), code(ErrorCode.VALIDATION_FAILED), bad);
  assert.equal(percentOf(1250), "12.50");
  assert.equal(percentOf(5), "0.05");
});

test("pro rata shares sum exactly to the total, each within one unit of its exact share", () => {
  assert.deepEqual(proRata(units(10n), [units(1n), units(1n), units(1n)]), [4n, 3n, 3n]);
  assert.deepEqual(proRata(units(7n), [units(0n), units(0n)]), [0n, 0n]);
  fc.assert(
    fc.property(
      fc.bigInt({ min: 0n, max: 10n ** 15n }),
      fc.array(fc.bigInt({ min: 0n, max: 10n ** 15n }), { minLength: 1, maxLength: 30 }),
      (total, weights) => {
        const shares = proRata(
          units(total),
          weights.map((w) => units(w)),
        );
        const whole = weights.reduce((a, w) => a + w, 0n);
        if (whole === 0n) return shares.every((s) => s === 0n);
        assert.equal(
          shares.reduce((a, s) => a + s, 0n),
          total,
        );
        shares.forEach((s, i) => {
          const exact = (total * weights[i]!) / whole;
          assert.ok(s === exact || s === exact + 1n);
        });
        return true;
      },
    ),
  );
});
