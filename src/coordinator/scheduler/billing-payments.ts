import type { Billing } from "../billing/billing.ts";
import type { ClusterPayments } from "./payments.ts";

/**
 * The scheduler's payments port over the billing subsystem: deploys and extensions are charged
 * with the exact quote, leases settled per minute, the escrow's remainder refunded at the end.
 */
export function billingPayments(billing: Billing): ClusterPayments {
  return {
    async charge(tx, request) {
      const { currency, nodes } = request;
      const quote =
        request.paidMinutes === 0
          ? billing.quote({ currency, durationMinutes: request.minutes, nodes })
          : billing.quoteExtension({
              currency,
              durationMinutes: request.minutes,
              paidMinutes: request.paidMinutes,
              nodes,
            });
      const input = {
        clusterId: request.clusterId,
        consumerAccountId: request.consumerAccountId,
        quote,
        idempotencyKey: request.idempotencyKey,
        nowMs: request.nowMs,
      };
      const result =
        request.paidMinutes === 0
          ? await billing.chargeDeploy(tx, input)
          : await billing.chargeExtension(tx, input);
      return result.ok
        ? { ok: true, replayed: result.replayed }
        : { ok: false, code: result.code, details: { ...result.details } };
    },
    async settle(tx, leases) {
      const results = await billing.settleLeases(
        tx,
        leases.map((lease) => ({
          clusterId: lease.clusterId,
          leaseId: lease.leaseId,
          supplierAccountId: lease.supplierAccountId,
          currency: lease.currency,
          pricePerHour: lease.pricePerHour,
          servedMinutes: lease.servedMinutes,
          nowMs: lease.nowMs,
        })),
      );
      return results.flatMap((result, i) =>
        result.ok
          ? []
          : [
              {
                clusterId: leases[i]!.clusterId,
                leaseId: leases[i]!.leaseId,
                details: { ...result.details },
              },
            ],
      );
    },
    async slash(tx, slash) {
      const result = await billing.slash(tx, slash);
      return {
        taken: result.taken,
        fromStake: result.fromStake,
        fromEarnings: result.fromEarnings,
        shortfall: result.shortfall,
      };
    },
    escrowBalance: (tx, clusterId, currency) => billing.escrowBalance(tx, clusterId, currency),
    async refundRemainder(tx, cluster) {
      await billing.refundRemainder(tx, cluster);
    },
  };
}
