import type { Currency, Money } from "../../core/money.ts";

/**
 * The port between the ledger and the outside world's money. Deposits come in across a rail and
 * withdrawals go out across one; the ledger's `external:<rail>` account is its counterpart.
 *
 * Both calls run inside the DB transaction that records the movement, after the funds check and
 * before the commit: a rail that throws aborts the whole operation, and nothing is recorded. A rail
 * with real latency (on-chain) should therefore only enqueue here, in the same database (an
 * outbox row keyed by `idempotencyKey`), and confirm asynchronously — never call out mid-transaction.
 */
export interface PaymentRail {
  /** Names the ledger account `external:<name>`. */
  readonly name: string;
  /** Accepts money that arrived for `accountId`; answers the rail's reference for it. */
  acceptDeposit(request: RailRequest): Promise<RailReceipt>;
  /** Starts paying `amount` out to `destination`; answers the rail's reference for it. */
  sendWithdrawal(request: RailRequest & { destination: string | null }): Promise<RailReceipt>;
}

export interface RailRequest {
  readonly accountId: string;
  readonly currency: Currency;
  readonly amount: Money;
  /** Stable across retries of one request: a rail deduplicates on it. */
  readonly idempotencyKey: string;
}

export interface RailReceipt {
  readonly reference: string;
}

/**
 * The manual rail: an operator moves the money by hand (a bank transfer, a faucet in `tandem dev`)
 * and the ledger records it. It accepts everything; the reference is the idempotency key.
 */
export class ManualRail implements PaymentRail {
  readonly name = "manual";

  acceptDeposit(request: RailRequest): Promise<RailReceipt> {
    return Promise.resolve({ reference: `manual:${request.idempotencyKey}` });
  }

  sendWithdrawal(request: RailRequest & { destination: string | null }): Promise<RailReceipt> {
    return Promise.resolve({ reference: `manual:${request.idempotencyKey}` });
  }
}
