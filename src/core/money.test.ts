import assert from "node:assert/strict";
import { describe, it } from "node:test";
import fc from "fast-check";
import { ErrorCode, TandemError } from "./errors.ts";
import type { AmountProblem } from "./money.ts";
import {
  MAX_UNITS,
  formatMoney,
  money,
  mulDivCeil,
  mulDivFloor,
  mulRateFloor,
  parseCurrencyOrThrow,
  parseMoney,
  parseMoneyOrThrow,
  units,
} from "./money.ts";

describe("parseMoney", () => {
  it("reads plain decimals into smallest units", () => {
    const cases: Array<[string, bigint]> = [
      ["1", 1_000_000n],
      ["1000", 1_000_000_000n],
      ["0.25", 250_000n],
      ["102.250000", 102_250_000n],
      ["0.000001", 1n],
      ["007.5", 7_500_000n],
      ["9223372036854.775807", MAX_UNITS],
    ];
    for (const [text, expected] of cases)
      assert.deepEqual(parseMoney(text), { ok: true, value: expected }, text);
  });

  it("refuses bad amounts with a typed problem", () => {
    const cases: Array<[string, AmountProblem]> = [
      ["abc", "NOT_A_NUMBER"],
      ["", "NOT_A_NUMBER"],
      ["1e3", "NOT_A_NUMBER"],
      ["1E-6", "NOT_A_NUMBER"],
      ["+1", "NOT_A_NUMBER"],
      [" 1", "NOT_A_NUMBER"],
      ["1 ", "NOT_A_NUMBER"],
      [".5", "NOT_A_NUMBER"],
      ["1.", "NOT_A_NUMBER"],
      ["0x10", "NOT_A_NUMBER"],
      ["1,5", "NOT_A_NUMBER"],
      ["Infinity", "NOT_A_NUMBER"],
      ["NaN", "NOT_A_NUMBER"],
      ["١", "NOT_A_NUMBER"],
      ["1.0000001", "TOO_MANY_DECIMALS"],
      ["0.0000000", "TOO_MANY_DECIMALS"],
      ["9223372036854.775808", "TOO_LARGE"],
      ["9223372036855", "TOO_LARGE"],
      ["9".repeat(100), "TOO_LARGE"],
      ["-1", "NEGATIVE"],
      ["-0.000001", "NEGATIVE"],
      ["0", "ZERO"],
      ["0.000000", "ZERO"],
      ["-0", "ZERO"],
    ];
    for (const [text, problem] of cases) {
      const parsed = parseMoney(text);
      assert.equal(parsed.ok ? "ok" : parsed.problem, problem, JSON.stringify(text));
    }
  });

  it("accepts negatives and zero only when asked", () => {
    assert.deepEqual(parseMoney("-1.5", { allowNegative: true }), { ok: true, value: -1_500_000n });
    assert.deepEqual(parseMoney("0", { allowZero: true }), { ok: true, value: 0n });
    assert.equal(parseMoney("-9223372036854.775808", { allowNegative: true }).ok, false);
  });

  it("throws INVALID_AMOUNT with the problem in details", () => {
    assert.throws(
      () => parseMoneyOrThrow("1.1234567"),
      (error: unknown) =>
        error instanceof TandemError &&
        error.code === ErrorCode.INVALID_AMOUNT &&
        error.details?.problem === "TOO_MANY_DECIMALS",
    );
  });

  it("round-trips with formatMoney for every amount in range", () => {
    fc.assert(
      fc.property(fc.bigInt({ min: -MAX_UNITS, max: MAX_UNITS }), (n) => {
        const text = formatMoney(units(n));
        assert.match(text, /^-?\d+\.\d{6}$/);
        assert.deepEqual(parseMoney(text, { allowNegative: true, allowZero: true }), {
          ok: true,
          value: n,
        });
      }),
    );
  });
});

describe("formatMoney", () => {
  it("prints exactly 6 decimals", () => {
    assert.equal(formatMoney(money("102.25")), "102.250000");
    assert.equal(formatMoney(money("0")), "0.000000");
    assert.equal(formatMoney(money("0.000001")), "0.000001");
    assert.equal(formatMoney(money("-1.5")), "-1.500000");
  });
});

describe("currencies", () => {
  it("accepts the closed set only", () => {
    assert.equal(parseCurrencyOrThrow("USDC"), "USDC");
    for (const bad of ["usdc", "EUR", "", "TDM "]) {
      assert.throws(
        () => parseCurrencyOrThrow(bad),
        (e: unknown) => e instanceof TandemError && e.code === ErrorCode.UNKNOWN_CURRENCY,
      );
    }
  });
});

describe("mulRateFloor", () => {
  it("rounds down, in the payer's favour", () => {
    assert.equal(mulRateFloor(money("100"), { bps: 25 }), money("0.25"));
    assert.equal(mulRateFloor(units(399n), { bps: 25 }), 0n);
    assert.equal(mulRateFloor(units(400n), { bps: 25 }), 1n);
    assert.equal(mulRateFloor(units(1_000_000n), { ppm: 1 }), 1n);
    assert.equal(mulRateFloor(units(-1n), { bps: 25 }), -1n);
  });

  it("is ⌊a × r⌋ exactly and never exceeds a for r ≤ 100 %", () => {
    fc.assert(
      fc.property(
        fc.bigInt({ min: 0n, max: MAX_UNITS }),
        fc.integer({ min: 0, max: 10_000 }),
        (a, bps) => {
          const f = mulRateFloor(units(a), { bps });
          assert.ok(f * 10_000n <= a * BigInt(bps));
          assert.ok((f + 1n) * 10_000n > a * BigInt(bps));
          assert.ok(f <= a);
        },
      ),
    );
  });

  it("mulDivFloor floors towards −∞", () => {
    assert.equal(mulDivFloor(units(-7n), 1n, 2n), -4n);
    assert.equal(mulDivFloor(units(7n), 1n, 2n), 3n);
  });

  it("mulDivCeil rounds a fraction of a unit up, and an exact result not at all", () => {
    // What an autoscaled cluster's node still owes for 61 minutes at 1.000000/h: 1.016667.
    assert.equal(mulDivCeil(units(1_000_000n), 61n, 60n), 1_016_667n);
    assert.equal(mulDivCeil(units(1_200_000n), 30n, 60n), 600_000n);
    assert.equal(mulDivCeil(units(7n), 1n, 2n), 4n);
    assert.equal(mulDivCeil(units(0n), 5n, 3n), 0n);
  });
});
