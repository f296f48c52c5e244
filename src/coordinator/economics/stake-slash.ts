/**
 * The stake side of a slash (issue 16 item 5; DESIGN §6 "collateral"): a failed node's forfeit is
 * taken from the stake on that node first, pro rata across its slashable positions (`active` and
 * `unbonding`: core/stake.ts `isSlashable`), before the supplier's unpaid earnings
 * (billing/slashes.ts). Stake is TDM; a lease paid in another currency is converted at the price
 * oracle's rate through the network's exchange (the treasury, as payouts.ts does), rounded in the
 * network's favour: ⌈owed⌉ in TDM is what the stake owes, ⌊taken⌋ back is what reaches the consumer.
 *
 *   escrow:clu_stake:<stk_…>  TDM  −share        (slash)      one posting per position
 *   treasury                  TDM  +taken        (exchange)   ← only when the lease is not in TDM
 *   treasury                  C    −credited     (exchange)
 *   (the caller credits the consumer's wallet with `credited` plus what earnings gave)
 *
 * Locks, in stakes.ts's order: the node's position rows (`FOR UPDATE`, PostgreSQL), then their
 * escrow balances, so an unstake or withdrawal racing the slash runs wholly before or after it; a
 * position withdrawn first is gone (its status and its empty escrow), one withdrawn after pays out
 * what the slash left. Each share is at most its position's balance (`proRata` of at most the
 * whole), so no stake goes below zero, and the database's escrow guard would refuse it anyway.
 */
import {
  convert,
  convertUp,
  describeRate,
  exchangeRate,
  inverse,
  type ExchangeRate,
  type OracleRates,
} from "../../core/exchange.ts";
import { ZERO, formatMoney, min, neg, type Currency, type Money } from "../../core/money.ts";
import { StakeStatus, isSlashable, proRata } from "../../core/stake.ts";
import { Leg, TREASURY, stakeAccount } from "../billing/ledger-accounts.ts";
import type { Ledger, PostingInput, Tx } from "../billing/ledger.ts";
import { appendHistories } from "../registry/node-history.ts";

/** One position's part of a slash, TDM units. */
export interface SlashedPosition {
  readonly stakeId: string;
  readonly accountId: string;
  readonly amount: Money;
}

export interface StakeSlash {
  /** TDM taken from the node's positions, in all (Σ positions' amounts). */
  readonly taken: Money;
  /** What the consumer receives for it, in the lease's currency. */
  readonly credited: Money;
  /** The lease's currency → TDM; undefined when the lease is paid in TDM. */
  readonly rate: ExchangeRate | undefined;
  /** Each position's share; positions that give nothing are left out. */
  readonly positions: readonly SlashedPosition[];
}

const SLASHABLE = (Object.values(StakeStatus) as StakeStatus[]).filter(isSlashable);

/**
 * Locks the node's slashable positions and answers what each holds, in id order. The escrow
 * balances are read in chunks of 500 accounts (the ledger's sorted lock order within each).
 */
export async function slashablePositions(tx: Tx, ledger: Ledger, nodeId: string) {
  let query = tx
    .selectFrom("stakes")
    .select(["id", "account_id"])
    .where("node_id", "=", nodeId)
    .where("status", "in", SLASHABLE)
    .orderBy("id");
  if (ledger.dialect === "postgres") query = query.forUpdate();
  const rows = await query.execute();
  const held = new Map<string, Money>();
  const accounts = rows.map((r) => stakeAccount(r.id)).sort();
  for (let i = 0; i < accounts.length; i += 500)
    for (const [account, balance] of await ledger.lockBalances(
      tx,
      "TDM",
      accounts.slice(i, i + 500),
    ))
      held.set(account, balance);
  return rows.map((r) => ({
    stakeId: r.id,
    accountId: r.account_id,
    balance: held.get(stakeAccount(r.id)) ?? ZERO,
  }));
}

/** The oracle's rate from the lease's currency to TDM; undefined for TDM or an unquoted currency. */
function stakeRate(rates: OracleRates, currency: Currency): ExchangeRate | undefined | null {
  if (currency === "TDM") return undefined;
  if (rates[currency] === undefined || rates.TDM === undefined) return null;
  return exchangeRate(rates, currency, "TDM");
}

/**
 * How much of `owed` (lease currency) the node's stake pays, and from which positions; undefined
 * when it pays nothing (no stake, nothing owed, or no oracle rate to convert with).
 */
export async function takeFromStake(
  tx: Tx,
  ledger: Ledger,
  rates: OracleRates,
  input: { nodeId: string; currency: Currency; owed: Money },
): Promise<StakeSlash | undefined> {
  if (input.owed <= 0n) return undefined;
  const rate = stakeRate(rates, input.currency);
  if (rate === null) return undefined;
  const positions = (await slashablePositions(tx, ledger, input.nodeId)).filter(
    (p) => p.balance > 0n,
  );
  const whole = positions.reduce((sum, p) => sum + p.balance, 0n);
  if (whole === 0n) return undefined;
  const taken = min(whole as Money, rate === undefined ? input.owed : convertUp(input.owed, rate));
  const credited = rate === undefined ? taken : min(input.owed, convert(taken, inverse(rate)));
  // A crumb of TDM worth less than a unit of the lease's currency is not worth taking.
  if (credited === 0n) return undefined;
  const shares = proRata(
    taken,
    positions.map((p) => p.balance),
  );
  return {
    taken,
    credited,
    rate,
    positions: positions
      .map((p, i) => ({ stakeId: p.stakeId, accountId: p.accountId, amount: shares[i]! }))
      .filter((p) => p.amount > 0n),
  };
}

/** The slash's stake postings (see the header); the consumer's credit is the caller's. */
export function stakeSlashPostings(slash: StakeSlash, currency: Currency): PostingInput[] {
  const postings: PostingInput[] = slash.positions.map((p) => ({
    account: stakeAccount(p.stakeId),
    currency: "TDM",
    amount: neg(p.amount),
    leg: Leg.SLASH,
  }));
  if (slash.rate !== undefined)
    postings.push(
      { account: TREASURY, currency: "TDM", amount: slash.taken, leg: Leg.EXCHANGE },
      { account: TREASURY, currency, amount: neg(slash.credited), leg: Leg.EXCHANGE },
    );
  return postings;
}

/** What the slash transaction's metadata says of the stake (positions by id, TDM amounts). */
export function stakeSlashMetadata(slash: StakeSlash) {
  return {
    taken: formatMoney(slash.taken),
    credited: formatMoney(slash.credited),
    ...(slash.rate === undefined ? {} : { exchange: describeRate(slash.rate) }),
    positions: slash.positions.map((p) => ({ stakeId: p.stakeId, amount: formatMoney(p.amount) })),
  };
}

/** One `stake-slashed` row per position in the node's public history. */
export function appendStakeSlashes(
  tx: Tx,
  slash: StakeSlash,
  context: {
    nodeId: string;
    clusterId: string;
    leaseId: string;
    transactionId: string;
    nowMs: number;
  },
): Promise<void> {
  return appendHistories(
    tx,
    slash.positions.map((p) => ({
      nodeId: context.nodeId,
      atMs: context.nowMs,
      actor: "scheduler",
      action: "stake-slashed",
      detail: {
        stakeId: p.stakeId,
        amount: formatMoney(p.amount),
        currency: "TDM",
        clusterId: context.clusterId,
        leaseId: context.leaseId,
        transactionId: context.transactionId,
      },
    })),
  );
}
