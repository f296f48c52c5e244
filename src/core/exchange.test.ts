import assert from "node:assert/strict";
import { test } from "node:test";
import { ErrorCode, TandemError } from "./errors.ts";
import {
  DEFAULT_ORACLE_RATES,
  convert,
  convertUp,
  describeRate,
  exchangeRate,
  formatRate,
  inverse,
} from "./exchange.ts";
import { MAX_UNITS, money, units } from "./money.ts";

test("conversion goes through the oracle's per-dollar quotes, rounded down", () => {
  const usdcToTdm = exchangeRate(DEFAULT_ORACLE_RATES, "USDC", "TDM");
  assert.equal(convert(money("99.25"), usdcToTdm), money("198.5"));
  const tdmToUsdc = inverse(usdcToTdm);
  assert.equal(convert(units(3n), tdmToUsdc), units(1n)); // 1.5 units → 1
  assert.equal(convertUp(units(3n), tdmToUsdc), units(2n));
  assert.equal(convert(units(0n), tdmToUsdc), units(0n));
  // Same currency: the identity, whatever the quotes.
  const same = exchangeRate(DEFAULT_ORACLE_RATES, "USD", "USD");
  assert.equal(convert(money("1.000001"), same), money("1.000001"));
  // A third: ⌊10 × 1/3⌋ and ⌈10 × 1/3⌉.
  const third = exchangeRate({ USD: 3_000_000n, USDC: 1_000_000n }, "USD", "USDC");
  assert.deepEqual([convert(units(10n), third), convertUp(units(10n), third)], [3n, 4n]);
  // Exact at the top of the 64-bit range: the product is a bigint, never a float.
  const down = exchangeRate({ TDM: 3_000_000n, USDC: 1_000_000n }, "TDM", "USDC");
  assert.equal(convert(units(MAX_UNITS), down), MAX_UNITS / 3n);
});

test("the recorded rate is exact where it terminates, truncated at 18 decimals otherwise", () => {
  const rates = { TDM: 3_000_000n, USDC: 1_000_000n, USD: 1_250_000n };
  assert.equal(formatRate(exchangeRate(rates, "USDC", "TDM")), "3.000000");
  assert.equal(formatRate(exchangeRate(rates, "TDM", "USDC")), "0.333333333333333333");
  assert.equal(formatRate(exchangeRate(rates, "USD", "USDC")), "0.800000");
  assert.equal(formatRate(exchangeRate(rates, "USDC", "USD")), "1.250000");
  assert.deepEqual(describeRate(exchangeRate(rates, "USDC", "TDM")), {
    from: "USDC",
    to: "TDM",
    rate: "3.000000",
    fromPerUsd: "1.000000",
    toPerUsd: "3.000000",
  });
});

test("a currency without a quote, and a negative amount, are refused", () => {
  const isCode = (code: string) => (e: unknown) => e instanceof TandemError && e.code === code;
  assert.throws(
    () => exchangeRate({ USDC: 1_000_000n }, "USDC", "TDM"),
    isCode(ErrorCode.VALIDATION_FAILED),
  );
  assert.throws(
    () => exchangeRate({ USDC: 1_000_000n, TDM: 0n }, "USDC", "TDM"),
    isCode(ErrorCode.VALIDATION_FAILED),
  );
  const rate = exchangeRate(DEFAULT_ORACLE_RATES, "USDC", "TDM");
  assert.throws(() => convert(units(-1n), rate), isCode(ErrorCode.INTERNAL));
  assert.throws(() => convertUp(units(-1n), rate), isCode(ErrorCode.INTERNAL));
});
