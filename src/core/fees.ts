/**
 * Quotes and per-minute settlement amounts (DESIGN.md §6), pure and exact to the smallest unit.
 *
 * Quote. The rental R is the sum over nodes of ⌊pricePerHour × minutes / 60⌋ (durations are whole
 * minutes; whole hours are the common case and are exact). On R, each fee is ⌊R × rate⌋:
 *
 *   reservation fee, consumer side   0.25 %   paid by the consumer on top of R
 *   payment fee                      2 %      paid by the consumer, unless paying in TDM
 *   reservation fee, supplier side   0.25 %   taken from the suppliers' R
 *   burn                             0.5 %    taken from the suppliers' R
 *
 *   consumerTotal  = R + reservationConsumer + payment
 *   supplierPayout = R − reservationSupplier − burn
 *   treasury       = reservationConsumer + reservationSupplier + payment
 *   consumerTotal  = supplierPayout + treasury + burn            (conservation, exact)
 *
 * Settlement. A lease's gross earnings after m served minutes are G(m) = ⌊pricePerHour × m / 60⌋,
 * its supplier fee F(m) = ⌊G(m) × reservation⌋, its burn B(m) = ⌊G(m) × burn⌋, its net N = G − F − B.
 * Each settlement releases the difference between these cumulative figures and what earlier
 * settlements released, so any number of settlements, at any minutes, add up to exactly the
 * one-shot figures: per-minute metering never drifts from the hourly quote.
 *
 * Trade-off: settlement computes the supplier fee and the burn per lease (each supplier pays on its
 * own earnings), while the quote computes them on the cluster's R. For one node they are equal; for
 * n nodes the sum of per-lease floors is at most n − 1 units below ⌊R × rate⌋ (never above), the
 * difference staying with the suppliers: the quote's `supplierPayout` is a lower bound that is
 * exact for one node, and `lines` carries the exact per-lease figures.
 */
import { ErrorCode, TandemError } from "./errors.ts";
import {
  AmountProblem,
  Currency,
  MAX_AMOUNT_UNITS,
  ZERO,
  add,
  formatWide,
  mulDivFloor,
  mulRateFloor,
  sub,
  sum,
  type Money,
} from "./money.ts";

/** Fee rates in basis points (1 bp = 0.01 %), and which currencies skip the payment fee. */
export interface FeeSchedule {
  /** Reservation fee, charged on each side, bps (default 25 = 0.25 %). */
  readonly reservationBps: number;
  /** Payment fee on the consumer side, bps (default 200 = 2 %). */
  readonly paymentBps: number;
  /** Burned from the suppliers' side, bps (default 50 = 0.5 %). */
  readonly burnBps: number;
  /** Currencies paid without the payment fee (default: TDM, the native token). */
  readonly paymentFeeExempt: readonly Currency[];
}

export const DEFAULT_FEE_SCHEDULE: FeeSchedule = {
  reservationBps: 25,
  paymentBps: 200,
  burnBps: 50,
  paymentFeeExempt: [Currency.TDM],
};

const MINUTES_PER_HOUR = 60n;
/** The longest duration a quote accepts: 10 years of minutes. */
export const MAX_DURATION_MINUTES = 10 * 366 * 24 * 60;

/** One node's part of a rental. */
export interface QuoteNode {
  readonly nodeId: string;
  /** Price per hour in the quote's currency. */
  readonly pricePerHour: Money;
}

export interface QuoteInput {
  readonly currency: Currency;
  /** Rental duration, whole minutes ≥ 1. */
  readonly durationMinutes: number;
  readonly nodes: readonly QuoteNode[];
  readonly schedule?: FeeSchedule;
}

export interface QuoteFees {
  readonly reservationConsumer: Money;
  readonly reservationSupplier: Money;
  readonly payment: Money;
  readonly burn: Money;
}

/** What one node earns over the quoted minutes, settled exactly as `settlementTarget` will. */
export interface QuoteLine {
  readonly nodeId: string;
  readonly pricePerHour: Money;
  readonly minutes: number;
  readonly rental: Money;
  readonly supplierFee: Money;
  readonly burn: Money;
  readonly supplierPayout: Money;
}

export interface Quote {
  readonly currency: Currency;
  readonly durationMinutes: number;
  readonly rental: Money;
  readonly fees: QuoteFees;
  readonly consumerTotal: Money;
  readonly supplierPayout: Money;
  readonly treasury: Money;
  readonly lines: readonly QuoteLine[];
  /** The rates this quote used, so a charge can record them. */
  readonly schedule: FeeSchedule;
}

/** The rental of `minutes` at `pricePerHour`: ⌊price × minutes / 60⌋. */
export function rentalFor(pricePerHour: Money, minutes: number): Money {
  checkMinutes(minutes, "minutes", 0);
  return mulDivFloor(pricePerHour, BigInt(minutes), MINUTES_PER_HOUR);
}

/** A quote for a new rental of `durationMinutes` on `nodes`. */
export function quote(input: QuoteInput): Quote {
  checkMinutes(input.durationMinutes, "durationMinutes", 1);
  return quoteFromLines(
    input,
    input.nodes.map((node) => ({ node, from: 0, to: input.durationMinutes })),
  );
}

export interface ExtensionInput extends QuoteInput {
  /** Minutes the rental already paid for; the extension adds `durationMinutes` after them. */
  readonly paidMinutes: number;
}

/**
 * A quote for extending a rental already paid for `paidMinutes` by `durationMinutes`. Each node's
 * rental is G(paid + extra) − G(paid), so escrow always holds exactly what settlement at the new
 * end will release, whatever the minute counts; fees are ⌊R_extension × rate⌋ as for a new rental.
 */
export function quoteExtension(input: ExtensionInput): Quote {
  checkMinutes(input.paidMinutes, "paidMinutes", 0);
  checkMinutes(input.durationMinutes, "durationMinutes", 1);
  checkMinutes(input.paidMinutes + input.durationMinutes, "paidMinutes + durationMinutes", 1);
  return quoteFromLines(
    input,
    input.nodes.map((node) => ({
      node,
      from: input.paidMinutes,
      to: input.paidMinutes + input.durationMinutes,
    })),
  );
}

function quoteFromLines(
  input: QuoteInput,
  spans: ReadonlyArray<{ node: QuoteNode; from: number; to: number }>,
): Quote {
  if (spans.length === 0) throw new TandemError(ErrorCode.VALIDATION_FAILED, "no nodes to quote");
  const schedule = input.schedule ?? DEFAULT_FEE_SCHEDULE;
  checkSchedule(schedule);
  // The rental, summed wider than 64 bits first: a price × duration × nodes past the bound is a
  // refused request, not an overflow inside the arithmetic below.
  let wideRental = 0n;
  for (const { node, from, to } of spans) {
    wideRental += (node.pricePerHour * BigInt(to)) / MINUTES_PER_HOUR;
    wideRental -= (node.pricePerHour * BigInt(from)) / MINUTES_PER_HOUR;
  }
  checkTotal(wideRental, input.currency);
  const lines = spans.map(({ node, from, to }): QuoteLine => {
    if (node.pricePerHour < 0n) {
      throw new TandemError(ErrorCode.VALIDATION_FAILED, `negative price on ${node.nodeId}`);
    }
    const before = settlementTarget(node.pricePerHour, from, schedule);
    const after = settlementTarget(node.pricePerHour, to, schedule);
    return {
      nodeId: node.nodeId,
      pricePerHour: node.pricePerHour,
      minutes: to - from,
      rental: sub(after.gross, before.gross),
      supplierFee: sub(after.supplierFee, before.supplierFee),
      burn: sub(after.burn, before.burn),
      supplierPayout: sub(after.net, before.net),
    };
  });
  const rental = sum(lines.map((l) => l.rental));
  const fees: QuoteFees = {
    reservationConsumer: mulRateFloor(rental, { bps: schedule.reservationBps }),
    reservationSupplier: mulRateFloor(rental, { bps: schedule.reservationBps }),
    payment: schedule.paymentFeeExempt.includes(input.currency)
      ? ZERO
      : mulRateFloor(rental, { bps: schedule.paymentBps }),
    burn: mulRateFloor(rental, { bps: schedule.burnBps }),
  };
  const consumerTotal = add(add(rental, fees.reservationConsumer), fees.payment);
  checkTotal(consumerTotal, input.currency);
  return {
    currency: input.currency,
    durationMinutes: input.durationMinutes,
    rental,
    fees,
    consumerTotal,
    supplierPayout: sub(sub(rental, fees.reservationSupplier), fees.burn),
    treasury: add(add(fees.reservationConsumer, fees.reservationSupplier), fees.payment),
    lines,
    schedule,
  };
}

/** Cumulative settlement figures of one lease after some served minutes. */
export interface SettlementFigures {
  /** Released from escrow in all: G(m). */
  readonly gross: Money;
  /** To the treasury: the supplier-side reservation fee, ⌊G × reservation⌋. */
  readonly supplierFee: Money;
  /** Burned: ⌊G × burn⌋. */
  readonly burn: Money;
  /** To the supplier's earnings: G − fee − burn. */
  readonly net: Money;
}

/** What a lease has earned in all after `servedMinutes` (see the header). */
export function settlementTarget(
  pricePerHour: Money,
  servedMinutes: number,
  schedule: FeeSchedule = DEFAULT_FEE_SCHEDULE,
): SettlementFigures {
  const gross = rentalFor(pricePerHour, servedMinutes);
  const supplierFee = mulRateFloor(gross, { bps: schedule.reservationBps });
  const burn = mulRateFloor(gross, { bps: schedule.burnBps });
  return { gross, supplierFee, burn, net: sub(sub(gross, supplierFee), burn) };
}

/**
 * What to release now: the cumulative target less what was released. With the schedule unchanged
 * every part is ≥ 0. Should the rates change mid-lease, the fee and burn deltas are clamped into
 * [0, gross delta] so a release never takes back, never exceeds the gross and always balances.
 * A target below what was released (fewer minutes than before) releases nothing.
 */
export function settlementDelta(
  target: SettlementFigures,
  released: SettlementFigures,
): SettlementFigures {
  const gross = target.gross > released.gross ? sub(target.gross, released.gross) : ZERO;
  const supplierFee = clampPart(sub(target.supplierFee, released.supplierFee), gross);
  const burn = clampPart(sub(target.burn, released.burn), sub(gross, supplierFee));
  return { gross, supplierFee, burn, net: sub(sub(gross, supplierFee), burn) };
}

function clampPart(value: Money, ceiling: Money): Money {
  if (value < 0n) return ZERO;
  return value > ceiling ? ceiling : value;
}

export const NO_SETTLEMENT: SettlementFigures = {
  gross: ZERO,
  supplierFee: ZERO,
  burn: ZERO,
  net: ZERO,
};

/** A computed charge above `MAX_AMOUNT_UNITS` refuses the request (`INVALID_AMOUNT`). */
function checkTotal(total: bigint, currency: Currency): void {
  if (total <= MAX_AMOUNT_UNITS) return;
  throw new TandemError(
    ErrorCode.INVALID_AMOUNT,
    `the total would be above the largest amount allowed, ${formatWide(MAX_AMOUNT_UNITS)} ${currency}`,
    {
      details: {
        problem: AmountProblem.TOO_LARGE,
        field: "total",
        max: formatWide(MAX_AMOUNT_UNITS),
        currency,
      },
    },
  );
}

function checkMinutes(value: number, name: string, least: number): void {
  if (!Number.isSafeInteger(value) || value < least || value > MAX_DURATION_MINUTES) {
    throw new TandemError(
      ErrorCode.VALIDATION_FAILED,
      `${name} must be a whole number of minutes in [${least}, ${MAX_DURATION_MINUTES}], got ${value}`,
    );
  }
}

function checkSchedule(schedule: FeeSchedule): void {
  for (const [name, bps] of [
    ["reservationBps", schedule.reservationBps],
    ["paymentBps", schedule.paymentBps],
    ["burnBps", schedule.burnBps],
  ] as const) {
    if (!Number.isSafeInteger(bps) || bps < 0 || bps > 10_000) {
      throw new TandemError(
        ErrorCode.INTERNAL,
        `fee ${name} must be in [0, 10000] bps, got ${bps}`,
      );
    }
  }
  if (schedule.reservationBps + schedule.burnBps > 10_000) {
    throw new TandemError(ErrorCode.INTERNAL, "supplier-side fees exceed 100 %");
  }
}

/** Checks a quote's own arithmetic (conservation included); a broken one is a bug upstream. */
export function assertQuoteConsistent(q: Quote): void {
  const ok =
    q.rental >= 0n &&
    q.rental === sum(q.lines.map((l) => l.rental)) &&
    q.consumerTotal === add(add(q.rental, q.fees.reservationConsumer), q.fees.payment) &&
    q.supplierPayout === sub(sub(q.rental, q.fees.reservationSupplier), q.fees.burn) &&
    q.treasury ===
      add(add(q.fees.reservationConsumer, q.fees.reservationSupplier), q.fees.payment) &&
    q.consumerTotal === add(add(q.supplierPayout, q.treasury), q.fees.burn) &&
    [q.fees.reservationConsumer, q.fees.reservationSupplier, q.fees.payment, q.fees.burn].every(
      (f) => f >= 0n,
    );
  if (!ok) {
    throw new TandemError(ErrorCode.INTERNAL, "inconsistent quote", {
      details: { rental: q.rental.toString(), consumerTotal: q.consumerTotal.toString() },
    });
  }
}
