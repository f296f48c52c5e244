/**
 * Money: integer amounts of a currency's smallest unit, as `bigint` (DESIGN.md §4, §6).
 *
 * Every supported currency has 6 decimals, so 1 unit = 0.000001 and "102.250000" is 102_250_000n.
 * Amounts never pass through a JS `number`: they are parsed from and formatted to decimal strings
 * (the wire form, exactly 6 decimals) and stored in signed 64-bit integer columns, so an amount's
 * magnitude is below 2^63 units (≈ 9.22 trillion whole units). Rounding is always explicit and
 * always down (`mulRateFloor`), in the payer's favour.
 *
 * `Money` is a branded `bigint`: only this module makes one (`parseMoney`, `units`, arithmetic),
 * so a raw count of minutes or an unrelated `bigint` cannot be passed where an amount is expected.
 */
import { ErrorCode, TandemError } from "./errors.ts";

/** The closed set of currencies. TDM is the network's native token. */
export const Currency = { TDM: "TDM", USDC: "USDC", USD: "USD" } as const;
export type Currency = (typeof Currency)[keyof typeof Currency];
export const CURRENCIES: readonly Currency[] = [Currency.TDM, Currency.USDC, Currency.USD];

/** Decimals of every supported currency. */
export const MONEY_DECIMALS = 6;
/** Smallest units in one whole unit (10^6). */
export const UNITS_PER_WHOLE = 1_000_000n;
/** The largest magnitude an amount may have: the signed 64-bit range, 2^63 − 1 units. */
export const MAX_UNITS = 2n ** 63n - 1n;

/**
 * The one bound on every money amount a request may carry or a request may make the coordinator
 * compute (a deposit, a withdrawal, a quote's total, an extension, an autoscale prepay):
 * 1,000,000,000.000000 = 10^15 units. A billion of any currency in one movement is far beyond any
 * real rental, yet 9,223 such amounts still fit one signed 64-bit balance, so no single request
 * can take a stored balance (a 64-bit column) near its limit; sums over the whole ledger are
 * computed wider than 64 bits anyway (billing/wide-sum.ts).
 */
export const MAX_AMOUNT_UNITS = 1_000_000_000n * UNITS_PER_WHOLE;

/**
 * The bound on every price per node-hour (a supplier's market price, a search's maximum price):
 * 1,000.000000. A node is at most 64 GPUs, and a 64-GPU node at today's dearest on-demand rate
 * (about $12 per H100-hour at a hyperscaler) is under $800 an hour. At the bound, the largest
 * deploy (256 nodes × 720 hours, plus 2.25% fees) costs 188,467,200 USD: below `MAX_AMOUNT_UNITS`
 * in dollars; only a conversion into a currency worth much less than a dollar can exceed it, and
 * computed totals are checked against that bound on their own.
 */
export const MAX_PRICE_PER_HOUR_UNITS = 1_000n * UNITS_PER_WHOLE;

declare const moneyBrand: unique symbol;
/** An amount in the smallest unit of some currency (the currency travels beside it). */
export type Money = bigint & { readonly [moneyBrand]: "Money" };

export const ZERO = 0n as Money;

/** Why a decimal string is not an acceptable amount. */
export const AmountProblem = {
  NOT_A_NUMBER: "NOT_A_NUMBER",
  TOO_MANY_DECIMALS: "TOO_MANY_DECIMALS",
  TOO_LARGE: "TOO_LARGE",
  NEGATIVE: "NEGATIVE",
  ZERO: "ZERO",
} as const;
export type AmountProblem = (typeof AmountProblem)[keyof typeof AmountProblem];

export type ParseMoneyResult =
  { ok: true; value: Money } | { ok: false; problem: AmountProblem; message: string };

export interface ParseMoneyOptions {
  /** Accept a leading minus (default false). */
  allowNegative?: boolean;
  /** Accept zero (default false). */
  allowZero?: boolean;
  /** The largest magnitude accepted (default `MAX_UNITS`, the 64-bit range). */
  maxUnits?: bigint;
}

// Plain decimal notation only: no exponent, no sign but an optional minus, no spaces, no bare ".5".
const DECIMAL = /^(-?)(\d+)(?:\.(\d+))?$/;
// Longer inputs are refused before any BigInt is built from them.
const MAX_INPUT_LENGTH = 64;

/**
 * Parses a decimal string ("1000", "0.25", "102.250000") into smallest units. Refuses, with a typed
 * problem: anything but plain decimal notation (exponents, "+1", " 1", "0x10", "", ".5", "1."),
 * more than 6 decimals, a magnitude above `maxUnits` (default: ≥ 2^63 units), and, unless allowed,
 * negative amounts and zero.
 */
export function parseMoney(text: string, options: ParseMoneyOptions = {}): ParseMoneyResult {
  const match = text.length <= MAX_INPUT_LENGTH ? DECIMAL.exec(text) : null;
  if (match === null) {
    const digitsOnly = /^-?\d+(\.\d+)?$/.test(text);
    return digitsOnly && text.length > MAX_INPUT_LENGTH
      ? refuse(AmountProblem.TOO_LARGE, `amount "${text.slice(0, 24)}…" is too large`)
      : refuse(
          AmountProblem.NOT_A_NUMBER,
          `amount "${text.slice(0, 40)}" is not a plain decimal number such as "12.5"`,
        );
  }
  const [, minus = "", whole = "", fraction = ""] = match;
  if (fraction.length > MONEY_DECIMALS) {
    return refuse(
      AmountProblem.TOO_MANY_DECIMALS,
      `amount "${text}" has ${fraction.length} decimals; at most ${MONEY_DECIMALS} are allowed`,
    );
  }
  const magnitude =
    BigInt(whole) * UNITS_PER_WHOLE + BigInt(fraction.padEnd(MONEY_DECIMALS, "0") || "0");
  const maxUnits = options.maxUnits ?? MAX_UNITS;
  if (magnitude > maxUnits) {
    return refuse(
      AmountProblem.TOO_LARGE,
      maxUnits === MAX_UNITS
        ? `amount "${text}" is at or above 2^63 smallest units`
        : `amount "${text}" is above the largest allowed, ${formatWide(maxUnits)}`,
    );
  }
  if (magnitude === 0n) {
    return options.allowZero === true
      ? { ok: true, value: ZERO }
      : refuse(AmountProblem.ZERO, "amount must be greater than zero");
  }
  if (minus === "-" && options.allowNegative !== true) {
    return refuse(AmountProblem.NEGATIVE, `amount "${text}" is negative`);
  }
  return { ok: true, value: (minus === "-" ? -magnitude : magnitude) as Money };
}

function refuse(problem: AmountProblem, message: string): ParseMoneyResult {
  return { ok: false, problem, message };
}

/** Parses or throws `INVALID_AMOUNT` with `details.problem` (for input at the API edge). */
export function parseMoneyOrThrow(
  text: string,
  options: ParseMoneyOptions & { field?: string } = {},
): Money {
  const parsed = parseMoney(text, options);
  if (parsed.ok) return parsed.value;
  throw new TandemError(ErrorCode.INVALID_AMOUNT, parsed.message, {
    details: { problem: parsed.problem, field: options.field ?? "amount" },
  });
}

/** An amount from a decimal literal written in code or tests; throws on a bad literal. */
export function money(text: string): Money {
  return parseMoneyOrThrow(text, { allowNegative: true, allowZero: true });
}

/** An amount from a count of smallest units (a database value, say); checks the 64-bit range. */
export function units(value: bigint | number | string): Money {
  const n = typeof value === "bigint" ? value : BigInt(value);
  if (n > MAX_UNITS || n < -MAX_UNITS) {
    throw new TandemError(ErrorCode.INTERNAL, `amount out of the 64-bit range: ${n}`);
  }
  return n as Money;
}

/** Exactly 6 decimals, a leading minus when negative: 102250000n → "102.250000". */
export function formatMoney(amount: Money): string {
  return formatWide(amount);
}

/**
 * `formatMoney` for a count of units of any size: a sum over many ledger rows (an audit total, a
 * node's lifetime earnings) may exceed the 64-bit range that one `Money` amount keeps to.
 */
export function formatWide(amount: bigint): string {
  const negative = amount < 0n;
  const magnitude: bigint = negative ? -amount : amount;
  const whole = magnitude / UNITS_PER_WHOLE;
  const fraction = (magnitude % UNITS_PER_WHOLE).toString().padStart(MONEY_DECIMALS, "0");
  return `${negative ? "-" : ""}${whole}.${fraction}`;
}

export function isCurrency(value: string): value is Currency {
  return (CURRENCIES as readonly string[]).includes(value);
}

/** Checks a currency code at the edge; throws `UNKNOWN_CURRENCY`. */
export function parseCurrencyOrThrow(value: string): Currency {
  if (isCurrency(value)) return value;
  throw new TandemError(
    ErrorCode.UNKNOWN_CURRENCY,
    `unknown currency "${value.slice(0, 16)}"; one of ${CURRENCIES.join(", ")}`,
    { details: { currency: value.slice(0, 16), known: [...CURRENCIES] } },
  );
}

export function add(a: Money, b: Money): Money {
  return units(a + b);
}

export function sub(a: Money, b: Money): Money {
  return units(a - b);
}

export function sum(amounts: Iterable<Money>): Money {
  let total = 0n;
  for (const amount of amounts) total += amount;
  return units(total);
}

export function neg(a: Money): Money {
  return -(a as bigint) as Money;
}

export function min(a: Money, b: Money): Money {
  return a < b ? a : b;
}

export function max(a: Money, b: Money): Money {
  return a > b ? a : b;
}

/** Clamps into [lo, hi]. */
export function clamp(a: Money, lo: Money, hi: Money): Money {
  return max(lo, min(a, hi));
}

/** A proportional rate: basis points (1/10,000) or parts per million. */
export type Rate = { readonly bps: number } | { readonly ppm: number };

function rateFraction(rate: Rate): { numerator: bigint; denominator: bigint } {
  const [value, denominator] = "bps" in rate ? [rate.bps, 10_000n] : [rate.ppm, 1_000_000n];
  if (!Number.isSafeInteger(value) || value < 0) {
    throw new TandemError(ErrorCode.INTERNAL, `a rate must be a whole number ≥ 0, got ${value}`);
  }
  return { numerator: BigInt(value), denominator };
}

/** ⌊amount × rate⌋ in the smallest unit (floor towards −∞ for a negative amount). */
export function mulRateFloor(amount: Money, rate: Rate): Money {
  const { numerator, denominator } = rateFraction(rate);
  return floorDiv(amount * numerator, denominator);
}

/** ⌊amount × numerator / denominator⌋, exact, for any integer numerator and positive denominator. */
export function mulDivFloor(amount: Money, numerator: bigint, denominator: bigint): Money {
  if (denominator <= 0n) {
    throw new TandemError(ErrorCode.INTERNAL, `denominator must be positive, got ${denominator}`);
  }
  return floorDiv(amount * numerator, denominator);
}

/** ⌈amount × numerator / denominator⌉ for a non-negative product and positive denominator. */
export function mulDivCeil(amount: Money, numerator: bigint, denominator: bigint): Money {
  return neg(mulDivFloor(neg(amount), numerator, denominator));
}

function floorDiv(n: bigint, d: bigint): Money {
  const q = n / d;
  return units(n % d !== 0n && n < 0n !== d < 0n ? q - 1n : q);
}
