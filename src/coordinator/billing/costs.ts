import { ZERO, add, neg, units, type Currency, type Money } from "../../core/money.ts";
import { Leg, TransactionKind } from "./ledger-accounts.ts";
import { readWideSum } from "./wide-sum.ts";

/**
 * What a cluster cost, from its postings alone (`GET /v1/clusters/:id/costs`):
 *
 *   charged    = rental + consumerFees.reservation + consumerFees.payment   (left the wallet)
 *   rental     = served + refunded + escrow                                  (escrow's in and out)
 *   served     = paidOut + supplierFees + burned                             (released per minute)
 *   paidOut    = Σ over payouts converted back: what left escrow net, in the cluster's currency
 * `payouts` is what the suppliers' earnings received, per currency and exchange rate: the cluster's
 * currency at no rate, or another currency at each oracle rate a settlement used.
 */
export interface ClusterCosts {
  readonly clusterId: string;
  /** The consumer whose wallet paid, when a deploy charge exists. */
  readonly consumerAccountId: string | null;
  readonly currency: Currency;
  readonly charged: Money;
  readonly rental: Money;
  readonly consumerFees: { readonly reservation: Money; readonly payment: Money };
  readonly served: Money;
  readonly paidOut: Money;
  readonly supplierFees: Money;
  readonly burned: Money;
  readonly refunded: Money;
  /** Still held for minutes not yet served. */
  readonly escrow: Money;
  /** Paid to the consumer from slashed suppliers whose nodes failed this cluster. */
  readonly slashCompensation: Money;
  readonly payouts: readonly CostPayout[];
}

/** Earnings credited for this cluster in one currency at one rate (null: not converted). */
export interface CostPayout {
  readonly currency: Currency;
  readonly amount: Money;
  readonly rate: string | null;
}

export interface CostRow {
  readonly account: string;
  readonly currency: string;
  readonly leg: string;
  readonly kind: string;
  readonly exchange_rate: string | null;
  /** The sum of the group's amounts in two parts (wide-sum.ts). */
  readonly total_high: string | null;
  readonly total_low: string | null;
}

export function costsFromRows(
  clusterId: string,
  consumerAccountId: string | null,
  clusterCurrency: Currency | null,
  rows: readonly CostRow[],
): ClusterCosts {
  const currency =
    clusterCurrency ??
    ((rows.find((r) => r.account.startsWith("escrow:")) ?? rows[0])?.currency as Currency) ??
    "USDC";
  const totals = new Map<string, Money>();
  const bump = (name: string, amount: Money) =>
    totals.set(name, add(totals.get(name) ?? ZERO, amount));
  const payouts = new Map<string, CostPayout>();
  for (const row of rows) {
    const amount = units(readWideSum(row.total_high, row.total_low));
    const kind = row.account.slice(0, row.account.indexOf(":") + 1) || row.account;
    if (kind === "earnings:" && row.leg === Leg.PAYOUT) {
      const key = `${row.currency}|${row.exchange_rate ?? ""}`;
      const prior = payouts.get(key);
      payouts.set(key, {
        currency: row.currency as Currency,
        amount: add(prior?.amount ?? ZERO, amount),
        rate: row.exchange_rate,
      });
    }
    if (row.currency !== currency) continue;
    if (kind === "escrow:") bump("escrow", amount);
    bump(`${kind}|${row.leg}`, amount);
    // The net of a converting settlement went to the exchange in the cluster's currency.
    if (kind === "treasury" && row.leg === Leg.EXCHANGE && row.kind === TransactionKind.SETTLEMENT)
      bump("converted", amount);
  }
  const get = (name: string) => totals.get(name) ?? ZERO;
  return {
    clusterId,
    consumerAccountId,
    currency,
    charged: neg(get(`wallet:|${Leg.CHARGE}`)),
    rental: get(`escrow:|${Leg.RENTAL}`),
    consumerFees: {
      reservation: get(`treasury|${Leg.RESERVATION_FEE}`),
      payment: get(`treasury|${Leg.PAYMENT_FEE}`),
    },
    served: neg(get(`escrow:|${Leg.SERVED}`)),
    paidOut: add(get(`earnings:|${Leg.PAYOUT}`), get("converted")),
    supplierFees: get(`treasury|${Leg.SUPPLIER_FEE}`),
    burned: get(`burn|${Leg.BURN}`),
    refunded: get(`wallet:|${Leg.REFUND}`),
    escrow: get("escrow"),
    slashCompensation: get(`wallet:|${Leg.SLASH}`),
    payouts: [...payouts.values()].sort((a, b) =>
      a.currency === b.currency
        ? (a.rate ?? "").localeCompare(b.rate ?? "")
        : a.currency.localeCompare(b.currency),
    ),
  };
}
