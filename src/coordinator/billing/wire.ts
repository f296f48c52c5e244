import type { Quote } from "../../core/fees.ts";
import { formatMoney } from "../../core/money.ts";
import type { ClusterCostsView, QuoteView } from "../../protocol/wallet.ts";
import type { ClusterCosts } from "./costs.ts";

/** A quote as the API answers it: every amount a 6-decimal string; `standby` marks shadow nodes. */
export function quoteView(q: Quote, standby: ReadonlySet<string> = new Set()): QuoteView {
  return {
    currency: q.currency,
    durationMinutes: q.durationMinutes,
    rental: formatMoney(q.rental),
    fees: {
      reservationConsumer: formatMoney(q.fees.reservationConsumer),
      reservationSupplier: formatMoney(q.fees.reservationSupplier),
      payment: formatMoney(q.fees.payment),
      burn: formatMoney(q.fees.burn),
    },
    consumerTotal: formatMoney(q.consumerTotal),
    supplierPayout: formatMoney(q.supplierPayout),
    treasury: formatMoney(q.treasury),
    lines: q.lines.map((l) => ({
      nodeId: l.nodeId,
      standby: standby.has(l.nodeId),
      pricePerHour: formatMoney(l.pricePerHour),
      minutes: l.minutes,
      rental: formatMoney(l.rental),
      supplierPayout: formatMoney(l.supplierPayout),
    })),
  };
}

export function costsView(c: ClusterCosts): ClusterCostsView {
  return {
    clusterId: c.clusterId,
    currency: c.currency,
    charged: formatMoney(c.charged),
    rental: formatMoney(c.rental),
    consumerFees: {
      reservation: formatMoney(c.consumerFees.reservation),
      payment: formatMoney(c.consumerFees.payment),
    },
    served: formatMoney(c.served),
    paidOut: formatMoney(c.paidOut),
    supplierFees: formatMoney(c.supplierFees),
    burned: formatMoney(c.burned),
    refunded: formatMoney(c.refunded),
    escrow: formatMoney(c.escrow),
    slashCompensation: formatMoney(c.slashCompensation),
    payouts: c.payouts.map((p) => ({
      currency: p.currency,
      amount: formatMoney(p.amount),
      rate: p.rate,
    })),
  };
}
