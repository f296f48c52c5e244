/**
 * Ledger account names. Each is per currency (a posting carries the currency beside the account).
 *
 * | account              | holds                                              | may go negative |
 * |----------------------|----------------------------------------------------|-----------------|
 * | `wallet:<acct_…>`    | a user's spendable funds                           | no (guarded)    |
 * | `escrow:<clu_…>`     | a cluster's prepaid, not yet earned rental         | no (guarded)    |
 * | `earnings:<acct_…>`  | a supplier's settled income, withdrawable          | no (guarded)    |
 * | `treasury`           | network fees                                       | —               |
 * | `burn`               | burned amounts (TDM destroyed; others for buy-back) | —               |
 * | `emission-pool`      | the TDM mint: genesis and emission come from it    | —               |
 * | `wallet:acct_genesis`| the 500,000,000 TDM genesis allocation (supply.ts) | no (guarded)    |
 * | `escrow:clu_stake:<stk_…>` | one stake position's TDM (economics/stakes.ts) | no (guarded)   |
 * | `escrow:clu_block:<hour>`  | a reward block's minted TDM until paid out: 0 after | no (guarded) |
 * | `external:<rail>`    | the outside world across a payment rail            | yes             |
 *
 * `emission-pool`'s TDM balance is −(genesis + emitted): it is internal, so minting keeps the
 * audit's identity, and TDM on `burn` is destroyed (economics/supply.ts). The genesis and stake
 * accounts take the wallet and escrow shapes because migration 0003 admits only those names and
 * guards only those prefixes against overdraft (see economics/stakes.ts).
 *
 * `external:<rail>` is the counterpart of deposits (it goes negative by what came in) and
 * withdrawals, so Σ internal balances = deposits − withdrawals per currency, exactly.
 *
 * The network's exchange is held by the treasury, as postings with leg `exchange`: a supplier
 * paid in another currency than the consumer's has the net amount go to `treasury` in the
 * consumer's currency and come out of `treasury` in the payout currency, converted at the oracle's
 * rate (recorded on the transaction). Every transaction still sums to zero per currency, and the
 * treasury's exchange balance per currency is the network's position (negative where it paid out
 * more than it took in); the audit shows it apart from the fees.
 */
export type LedgerAccount =
  | `wallet:${string}`
  | `escrow:${string}`
  | `earnings:${string}`
  | "treasury"
  | "burn"
  | "emission-pool"
  | `external:${string}`;

export const TREASURY = "treasury" satisfies LedgerAccount;
export const BURN = "burn" satisfies LedgerAccount;
export const EMISSION_POOL = "emission-pool" satisfies LedgerAccount;

/** The genesis allocation's account (economics/supply.ts). */
export const GENESIS_ACCOUNT = "wallet:acct_genesis" satisfies LedgerAccount;

export const walletAccount = (accountId: string): LedgerAccount => `wallet:${accountId}`;
export const escrowAccount = (clusterId: string): LedgerAccount => `escrow:${clusterId}`;
export const earningsAccount = (accountId: string): LedgerAccount => `earnings:${accountId}`;
export const externalAccount = (rail: string): LedgerAccount => `external:${rail}`;
/** One stake position's escrow (economics/stakes.ts). */
export const stakeAccount = (stakeId: string): LedgerAccount => `escrow:clu_stake:${stakeId}`;
/** One reward block's mint, paid out to its nodes in the same DB transaction (economics/reward-blocks.ts). */
export const blockAccount = (hour: number): LedgerAccount => `escrow:clu_block:${hour}`;

/**
 * SQL: the postings the account index covers (migration 0012 leaves out `treasury` and `burn`,
 * which are only summed whole). A query by account repeats it, as text, so SQLite picks the
 * partial index; `alias` is the postings table's alias in that query.
 */
export function indexedByAccount(alias?: string): string {
  return `${alias === undefined ? "" : `${alias}.`}account NOT IN ('${TREASURY}', '${BURN}')`;
}

/** Whether the database refuses a negative balance on this account (wallet, escrow, earnings). */
export function isGuarded(account: string): boolean {
  return (
    account.startsWith("wallet:") ||
    account.startsWith("escrow:") ||
    account.startsWith("earnings:")
  );
}

/** What a posting is for; the costs and history views group by it. */
export const Leg = {
  DEPOSIT: "deposit",
  WITHDRAWAL: "withdrawal",
  /** Consumer wallet → (escrow + treasury): the whole charge, on the wallet side. */
  CHARGE: "charge",
  /** The rental into escrow. */
  RENTAL: "rental",
  RESERVATION_FEE: "reservation-fee",
  PAYMENT_FEE: "payment-fee",
  /** Escrow released for served minutes (gross). */
  SERVED: "served",
  /** Net to the supplier's earnings. */
  PAYOUT: "payout",
  SUPPLIER_FEE: "supplier-fee",
  BURN: "burn",
  REFUND: "refund",
  /** A failed node's forfeit: supplier earnings → the affected consumer's wallet. */
  SLASH: "slash",
  /** The treasury's side of a currency conversion (the network's exchange). */
  EXCHANGE: "exchange",
  /** Between two internal balances of users (earnings → wallet, later; the ledger bench). */
  TRANSFER: "transfer",
  /** TDM minted at genesis: emission-pool → the genesis account. */
  GENESIS: "genesis",
  /** TDM minted by the hourly emission: emission-pool → the reward block's account. */
  EMISSION: "emission",
  /** A reward block's share credited to a stake position's escrow. */
  REWARD: "reward",
  /** A reward block's commission credited to the node's supplier's wallet. */
  COMMISSION: "commission",
  /** A wallet's TDM into a stake position's escrow. */
  STAKE: "stake",
  /** A withdrawn stake back to its staker's wallet. */
  STAKE_WITHDRAWAL: "stake-withdrawal",
} as const;
export type Leg = (typeof Leg)[keyof typeof Leg];

export const TransactionKind = {
  DEPOSIT: "deposit",
  WITHDRAWAL: "withdrawal",
  CHARGE_DEPLOY: "charge-deploy",
  CHARGE_EXTENSION: "charge-extension",
  SETTLEMENT: "settlement",
  REFUND: "refund",
  SLASH: "slash",
  GENESIS: "genesis",
  STAKE: "stake",
  STAKE_WITHDRAWAL: "stake-withdrawal",
  /** A reward block's mint (`block:<hour>`) and each node's payout (`block:<hour>:<node>`). */
  REWARD_BLOCK: "reward-block",
} as const;
export type TransactionKind = (typeof TransactionKind)[keyof typeof TransactionKind];
