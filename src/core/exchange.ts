/**
 * Currency conversion through the price oracle (issue 4 item 4: suppliers choose their payout
 * currency). The oracle quotes every currency as smallest units per US dollar (USDC and USD 1:1 by
 * default, TDM configured); a conversion from A to B multiplies by `B per USD / A per USD`.
 *
 * Exact integer math: ⌊amount × toPerUsd / fromPerUsd⌋, rounded down in the network's favour (the
 * network's exchange keeps the fraction of a unit). The rate used is recorded on the ledger
 * transaction as both oracle quotes (exact) and as a decimal string (`formatRate`).
 */
import { ErrorCode, TandemError } from "./errors.ts";
import { formatMoney, mulDivFloor, units, type Currency, type Money } from "./money.ts";

/** The price oracle's quotes: smallest units of each currency per US dollar (6 decimals). */
export type OracleRates = Readonly<Partial<Record<Currency, bigint>>>;

/** USDC and USD at par, TDM at the coordinator config's default (2 TDM = 1 USD). */
export const DEFAULT_ORACLE_RATES: OracleRates = {
  USD: 1_000_000n,
  USDC: 1_000_000n,
  TDM: 2_000_000n,
};

/** One conversion's rate: `to` units per `from` unit is `toPerUsd / fromPerUsd`. */
export interface ExchangeRate {
  readonly from: Currency;
  readonly to: Currency;
  /** Smallest units of `from` per US dollar, as the oracle quoted. */
  readonly fromPerUsd: bigint;
  /** Smallest units of `to` per US dollar, as the oracle quoted. */
  readonly toPerUsd: bigint;
}

/** The oracle's rate from one currency to another; `VALIDATION_FAILED` when one is not quoted. */
export function exchangeRate(rates: OracleRates, from: Currency, to: Currency): ExchangeRate {
  const fromPerUsd = rates[from];
  const toPerUsd = rates[to];
  for (const [currency, rate] of [
    [from, fromPerUsd],
    [to, toPerUsd],
  ] as const) {
    if (rate === undefined || rate <= 0n)
      throw new TandemError(ErrorCode.VALIDATION_FAILED, `no price oracle rate for ${currency}`, {
        details: { currency },
      });
  }
  return { from, to, fromPerUsd: fromPerUsd!, toPerUsd: toPerUsd! };
}

/** ⌊amount × toPerUsd / fromPerUsd⌋: an amount of `from` in `to`, rounded down. */
export function convert(amount: Money, rate: ExchangeRate): Money {
  if (amount < 0n)
    throw new TandemError(ErrorCode.INTERNAL, `cannot convert a negative amount (${amount})`);
  return rate.from === rate.to ? amount : mulDivFloor(amount, rate.toPerUsd, rate.fromPerUsd);
}

/** ⌈amount × toPerUsd / fromPerUsd⌉: what a payer owes in `to` for `amount` of `from`. */
export function convertUp(amount: Money, rate: ExchangeRate): Money {
  if (amount < 0n)
    throw new TandemError(ErrorCode.INTERNAL, `cannot convert a negative amount (${amount})`);
  if (rate.from === rate.to) return amount;
  return units((amount * rate.toPerUsd + rate.fromPerUsd - 1n) / rate.fromPerUsd);
}

/** The same rate the other way round. */
export function inverse(rate: ExchangeRate): ExchangeRate {
  return { from: rate.to, to: rate.from, fromPerUsd: rate.toPerUsd, toPerUsd: rate.fromPerUsd };
}

const RATE_DECIMALS = 18;

/**
 * Units of `to` per unit of `from` as a decimal string: exact when the quotient terminates within
 * 18 decimals, else truncated there. At least 6 decimals ("2.000000", "0.500000", "0.333333333333333333").
 */
export function formatRate(rate: ExchangeRate): string {
  const scale = 10n ** BigInt(RATE_DECIMALS);
  const scaled = (rate.toPerUsd * scale) / rate.fromPerUsd;
  const whole = scaled / scale;
  let fraction = (scaled % scale).toString().padStart(RATE_DECIMALS, "0");
  fraction = fraction.replace(/0+$/, "").padEnd(6, "0");
  return `${whole}.${fraction}`;
}

/** The rate as recorded on a ledger transaction (JSON metadata, wire form). */
export function describeRate(rate: ExchangeRate) {
  return {
    from: rate.from,
    to: rate.to,
    rate: formatRate(rate),
    fromPerUsd: formatMoney(units(rate.fromPerUsd)),
    toPerUsd: formatMoney(units(rate.toPerUsd)),
  };
}
