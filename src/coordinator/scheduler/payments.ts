import type { Currency, Money } from "../../core/money.ts";
import type { Tx } from "../store/transaction.ts";

/**
 * What the scheduler needs from billing, each call inside the scheduler's own transaction `tx`
 * so a reservation and its charge commit or roll back together. Amounts are smallest units of the
 * cluster's currency; prices are per node-hour.
 */
export interface ClusterPayments {
  /** Moves the whole rental and the consumer's fees into escrow, or answers why it cannot. */
  charge(
    tx: Tx,
    request: {
      clusterId: string;
      consumerAccountId: string;
      currency: Currency;
      nodes: ReadonlyArray<{ nodeId: string; pricePerHour: Money }>;
      /** Minutes being bought now. */
      minutes: number;
      /** For an extension: the minutes already paid for (0 for a deploy). */
      paidMinutes: number;
      idempotencyKey: string;
      nowMs: number;
    },
  ): Promise<
    /** `replayed`: this idempotency key was charged before; nothing moved now. */
    | { ok: true; replayed: boolean }
    | { ok: false; code: "INSUFFICIENT_FUNDS"; details: Record<string, unknown> }
  >;
  /**
   * Releases what each lease has earned after its `servedMinutes`, less what was released before:
   * one settlement pass, however many leases (a tick passes every running cluster's at once).
   * Answers the leases whose escrow could not pay (nothing was written for those; escrow always
   * holds what the quote said, so each is a broken invariant for the caller to raise or report).
   */
  settle(tx: Tx, leases: readonly LeaseSettlement[]): Promise<UnpaidLease[]>;
  /**
   * Takes a failed node's forfeit into the consumer's wallet, once per lease: from the stake on
   * the node first, then from its supplier's unpaid earnings; answers what each paid (together
   * they may cover less than `amount`).
   */
  slash(
    tx: Tx,
    slash: {
      clusterId: string;
      leaseId: string;
      nodeId: string;
      supplierAccountId: string;
      consumerAccountId: string;
      currency: Currency;
      amount: Money;
      reason: string;
      nowMs: number;
    },
  ): Promise<{ taken: Money; fromStake: Money; fromEarnings: Money; shortfall: Money }>;
  /** What the cluster's escrow holds now. */
  escrowBalance(tx: Tx, clusterId: string, currency: Currency): Promise<Money>;
  /** Returns whatever is left in the cluster's escrow to the consumer (a second call moves nothing). */
  refundRemainder(
    tx: Tx,
    cluster: { clusterId: string; consumerAccountId: string; currency: Currency; nowMs: number },
  ): Promise<void>;
}

export interface LeaseSettlement {
  clusterId: string;
  leaseId: string;
  supplierAccountId: string;
  currency: Currency;
  pricePerHour: Money;
  servedMinutes: number;
  nowMs: number;
}

export interface UnpaidLease {
  clusterId: string;
  leaseId: string;
  details: Record<string, unknown>;
}
