import { ZERO, add, neg, units, type Currency, type Money } from "../../core/money.ts";
import { Leg } from "./ledger-accounts.ts";

/**
 * What a cluster cost, from its postings alone (`GET /v1/clusters/:id/costs`):
 *
 *   charged    = rental + consumerFees.reservation + consumerFees.payment   (left the wallet)
 *   rental     = served + refunded + escrow                                  (escrow's in and out)
 *   served     = paidOut + supplierFees + burned                             (released per minute)
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
}

export interface CostRow {
  readonly account: string;
  readonly currency: string;
  readonly leg: string;
  readonly total: string;
}

export function costsFromRows(
  clusterId: string,
  consumerAccountId: string | null,
  rows: readonly CostRow[],
): ClusterCosts {
  let currency: Currency | undefined;
  const totals = new Map<string, Money>();
  const bump = (name: string, amount: Money) =>
    totals.set(name, add(totals.get(name) ?? ZERO, amount));
  for (const row of rows) {
    currency ??= row.currency as Currency;
    const amount = units(row.total);
    const kind = row.account.slice(0, row.account.indexOf(":") + 1) || row.account;
    if (kind === "escrow:") bump("escrow", amount);
    bump(`${kind}|${row.leg}`, amount);
  }
  const get = (name: string) => totals.get(name) ?? ZERO;
  return {
    clusterId,
    consumerAccountId,
    currency: currency ?? "USDC",
    charged: neg(get(`wallet:|${Leg.CHARGE}`)),
    rental: get(`escrow:|${Leg.RENTAL}`),
    consumerFees: {
      reservation: get(`treasury|${Leg.RESERVATION_FEE}`),
      payment: get(`treasury|${Leg.PAYMENT_FEE}`),
    },
    served: neg(get(`escrow:|${Leg.SERVED}`)),
    paidOut: get(`earnings:|${Leg.PAYOUT}`),
    supplierFees: get(`treasury|${Leg.SUPPLIER_FEE}`),
    burned: get(`burn|${Leg.BURN}`),
    refunded: get(`wallet:|${Leg.REFUND}`),
    escrow: get("escrow"),
    slashCompensation: get(`wallet:|${Leg.SLASH}`),
  };
}
