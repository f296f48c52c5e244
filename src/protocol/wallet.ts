import { z } from "zod";
import { AmountRequest } from "./amounts.ts";
import { CurrencyCode, MoneyString } from "./currency.ts";
import { IdPrefix, idSchema } from "./ids.ts";

/**
 * Wallet, ledger and cost bodies. Every amount is a decimal string, never a JSON number: answers
 * carry exactly 6 decimals ("102.250000"); requests carry up to 6, checked against one bound
 * (./amounts.ts) so a bad one answers a precise code (`INVALID_AMOUNT` with `details.problem`:
 * NOT_A_NUMBER | TOO_MANY_DECIMALS | TOO_LARGE | NEGATIVE | ZERO, `field` and `max`;
 * `UNKNOWN_CURRENCY`). Sums over the ledger (audit totals) may exceed the 64-bit range.
 */
export { CurrencyCode, MoneyString } from "./currency.ts";
export const CurrencyRequest = z.string().max(16).describe("TDM | USDC | USD");

/** `Idempotency-Key` request header: required on every POST that moves money. */
export const IDEMPOTENCY_HEADER = "idempotency-key";
export const IdempotencyKey = z
  .string()
  .regex(/^[A-Za-z0-9._:-]{1,128}$/, "1-128 of A-Z a-z 0-9 . _ : -");
export const IdempotencyHeaders = z.object({ [IDEMPOTENCY_HEADER]: IdempotencyKey });
/** Response header set to "true" when the answer is a replay of an earlier request's. */
export const REPLAYED_HEADER = "idempotent-replayed";

export const DepositRequest = z.strictObject({
  /** Whose wallet: any account for an admin; omitted or your own with the faucet on. */
  accountId: idSchema(IdPrefix.account).optional(),
  currency: CurrencyRequest,
  amount: AmountRequest,
});
export type DepositRequest = z.infer<typeof DepositRequest>;

export const WithdrawalSource = z.enum(["earnings", "wallet"]);
export const WithdrawalRequest = z.strictObject({
  currency: CurrencyRequest,
  amount: AmountRequest,
  /** Which balance pays: supplier `earnings` (default) or the spendable `wallet`. */
  from: WithdrawalSource.default("earnings"),
  /** Where the rail should send it (an address, an IBAN); the manual rail only records it. */
  destination: z.string().min(1).max(200).optional(),
});
export type WithdrawalRequest = z.input<typeof WithdrawalRequest>;

export const MoneyMovement = z.strictObject({
  transactionId: idSchema(IdPrefix.transaction),
  kind: z.enum(["deposit", "withdrawal"]),
  accountId: idSchema(IdPrefix.account),
  currency: CurrencyCode,
  amount: MoneyString,
  from: z.enum(["external", "earnings", "wallet"]),
  to: z.enum(["external", "wallet"]),
  rail: z.string(),
  railReference: z.string(),
  createdAt: z.iso.datetime(),
});
export type MoneyMovement = z.infer<typeof MoneyMovement>;

export const WalletBalance = z.strictObject({
  currency: CurrencyCode,
  /** Spendable: deposits, refunds; pays for clusters. */
  wallet: MoneyString,
  /** Supplier income from served minutes, net of fees; withdrawable. */
  earnings: MoneyString,
});
export const WalletView = z.strictObject({
  accountId: idSchema(IdPrefix.account),
  balances: z.array(WalletBalance),
});
export type WalletView = z.infer<typeof WalletView>;

/** `GET|PUT /v1/wallet/payout-currency`: null = paid in the currency each consumer paid. */
export const PayoutCurrencyView = z.strictObject({
  accountId: idSchema(IdPrefix.account),
  currency: CurrencyCode.nullable(),
});
export type PayoutCurrencyView = z.infer<typeof PayoutCurrencyView>;
export const PayoutCurrencyRequest = z.strictObject({
  /** TDM | USDC | USD, or null to be paid in the consumer's currency again. */
  currency: CurrencyRequest.nullable(),
});
export type PayoutCurrencyRequest = z.infer<typeof PayoutCurrencyRequest>;

export const WalletTransactionsQuery = z.strictObject({
  limit: z.coerce.number().int().min(1).max(500).default(50),
  cursor: idSchema(IdPrefix.transaction).optional(),
  currency: CurrencyCode.optional(),
});
export type WalletTransactionsQuery = { limit?: number; cursor?: string; currency?: CurrencyCode };

export const WalletEntry = z.strictObject({
  /** The wallet, the earnings, or one of the account's stake positions (TDM staked on a node). */
  balance: z.enum(["wallet", "earnings", "stake"]),
  /** The position, for a `stake` entry (its stake, a slash of it, its withdrawal). */
  stakeId: z.string().optional(),
  currency: CurrencyCode,
  leg: z.string(),
  amount: MoneyString,
});

/** A conversion through the network's exchange, at the rate the price oracle gave then. */
export const WalletExchange = z.strictObject({
  from: CurrencyCode,
  to: CurrencyCode,
  /** Units of `to` per unit of `from`. */
  rate: z.string(),
  /** The oracle's quotes: units of each per US dollar. */
  fromPerUsd: MoneyString,
  toPerUsd: MoneyString,
});

export const WalletTransaction = z.strictObject({
  id: idSchema(IdPrefix.transaction),
  kind: z.string(),
  createdAt: z.iso.datetime(),
  clusterId: z.string().nullable(),
  leaseId: z.string().nullable(),
  /** Present when this transaction converted currencies (a settlement paid in another currency). */
  exchange: WalletExchange.nullable(),
  /**
   * The payment rail's reference of a deposit or withdrawal (on Solana: the transfer's transaction
   * signature); null for other transactions.
   */
  railReference: z.string().nullable(),
  /** This account's side only: its wallet and earnings postings. */
  entries: z.array(WalletEntry),
});
export type WalletTransaction = z.infer<typeof WalletTransaction>;

export const WalletTransactionList = z.strictObject({
  items: z.array(WalletTransaction),
  nextCursor: z.string().nullable(),
});
export type WalletTransactionList = z.infer<typeof WalletTransactionList>;

export const ClusterCostsView = z.strictObject({
  clusterId: idSchema(IdPrefix.cluster),
  currency: CurrencyCode,
  /** Left the consumer's wallet: rental + consumer fees. */
  charged: MoneyString,
  rental: MoneyString,
  consumerFees: z.strictObject({ reservation: MoneyString, payment: MoneyString }),
  /** Released from escrow for served minutes: paidOut + supplierFees + burned. */
  served: MoneyString,
  paidOut: MoneyString,
  supplierFees: MoneyString,
  burned: MoneyString,
  refunded: MoneyString,
  /** Still in escrow. */
  escrow: MoneyString,
  /** Paid to the consumer by suppliers slashed for failing this cluster. */
  slashCompensation: MoneyString,
  /**
   * What suppliers' earnings received, per currency and exchange rate: `rate` is null in the
   * cluster's currency, else the oracle's units of `currency` per unit of the cluster's currency.
   */
  payouts: z.array(
    z.strictObject({ currency: CurrencyCode, amount: MoneyString, rate: z.string().nullable() }),
  ),
});
export type ClusterCostsView = z.infer<typeof ClusterCostsView>;

export const LedgerAuditCurrency = z.strictObject({
  currency: CurrencyCode,
  deposits: MoneyString,
  withdrawals: MoneyString,
  burned: MoneyString,
  /** Fees the treasury collected (its exchange postings not included). */
  treasury: MoneyString,
  /**
   * The network exchange's position (the treasury's `exchange` postings): positive in a
   * currency suppliers were paid out of, negative in one they were paid in. Part of `balances`.
   */
  exchange: MoneyString,
  /** Σ of every internal balance but burn (wallets, escrows, earnings, treasury, emission pool). */
  balances: MoneyString,
  /** balances = deposits − withdrawals − burned. */
  conserved: z.boolean(),
});
export const LedgerAudit = z.strictObject({
  currencies: z.array(LedgerAuditCurrency),
  transactions: z.number().int(),
  postings: z.number().int(),
  /** (transaction, currency) pairs whose postings do not sum to zero, plus empty transactions. */
  unbalancedTransactions: z.number().int(),
  /** Guarded accounts (wallet, escrow, earnings) whose Σ postings is below zero. */
  negativeBalances: z.number().int(),
  /** Guarded accounts whose cached balance differs from Σ postings. */
  cacheMismatches: z.number().int(),
  /**
   * TDM's supply from the mint and the burn (economics/supply.ts): total = genesis + emitted −
   * burned; `problems` names each bound broken (genesis, community pool, maximum), none when it holds.
   */
  supply: z.strictObject({
    genesis: MoneyString,
    emitted: MoneyString,
    burned: MoneyString,
    totalSupply: MoneyString,
    maxSupply: MoneyString,
    problems: z.array(z.string()),
  }),
  ok: z.boolean(),
});
export type LedgerAudit = z.infer<typeof LedgerAudit>;

/** A quote on the wire (`POST /v1/quotes`, deploy answers). */
export const QuoteView = z.strictObject({
  currency: CurrencyCode,
  durationMinutes: z.number().int(),
  rental: MoneyString,
  fees: z.strictObject({
    reservationConsumer: MoneyString,
    reservationSupplier: MoneyString,
    payment: MoneyString,
    burn: MoneyString,
  }),
  consumerTotal: MoneyString,
  supplierPayout: MoneyString,
  treasury: MoneyString,
  lines: z.array(
    z.strictObject({
      nodeId: z.string(),
      /** A shadow node, billed at the standby rate. */
      standby: z.boolean(),
      pricePerHour: MoneyString,
      minutes: z.number().int(),
      rental: MoneyString,
      supplierPayout: MoneyString,
    }),
  ),
});
export type QuoteView = z.infer<typeof QuoteView>;

export const DepositAddressQuery = z.strictObject({ currency: z.string().min(1).max(16) });

/** Where to send SPL tokens to fund your wallet on the Solana rail (`tandem wallet deposit-address`). */
export const DepositAddressView = z.strictObject({
  accountId: idSchema(IdPrefix.account),
  currency: CurrencyCode,
  network: z.literal("solana"),
  mint: z.string(),
  /** The token account to send to (the owner's associated token account for `mint`). */
  address: z.string(),
  /** Its owner: a key the coordinator derives for your account. */
  owner: z.string(),
});
export type DepositAddressView = z.infer<typeof DepositAddressView>;
