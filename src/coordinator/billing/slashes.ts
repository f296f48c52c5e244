/**
 * Slashes (DESIGN §6; issue 16 item 5): a node that failed while leased forfeits `amount` (one
 * hour of its lease's rate) to the harmed consumer, taken
 *   1. from the stake on that node, pro rata across its positions (economics/stake-slash.ts),
 *      converted from TDM at the oracle's rate;
 *   2. then from its supplier's unpaid earnings, in the lease's currency and, for a supplier paid
 *      in another currency, in that one converted back (payouts.ts);
 * and what neither covers is recorded as `shortfall`. Conversions round in the network's favour.
 *
 * Once per lease: the idempotency key `slash:<leaseId>` is locked first and its stored answer
 * replayed. One balanced ledger transaction holds every part (each position's debit, the earnings
 * debit, the exchange legs, the consumer's credit), and the node's public history gets one
 * `stake-slashed` row per position in the same DB transaction.
 */
import { ErrorCode, TandemError } from "../../core/errors.ts";
import {
  convert,
  convertUp,
  describeRate,
  formatRate,
  inverse,
  type ExchangeRate,
  type OracleRates,
} from "../../core/exchange.ts";
import {
  ZERO,
  add,
  formatMoney,
  min,
  neg,
  sub,
  units,
  type Currency,
  type Money,
} from "../../core/money.ts";
import {
  appendStakeSlashes,
  stakeSlashMetadata,
  stakeSlashPostings,
  takeFromStake,
  type StakeSlash,
} from "../economics/stake-slash.ts";
import {
  Leg,
  TREASURY,
  TransactionKind,
  earningsAccount,
  walletAccount,
} from "./ledger-accounts.ts";
import { requestHash, type Ledger, type PostingInput, type Tx } from "./ledger.ts";
import { payoutRate, readPayoutCurrencies } from "./payouts.ts";

export interface SlashInput {
  readonly clusterId: string;
  readonly leaseId: string;
  readonly nodeId: string;
  readonly supplierAccountId: string;
  readonly consumerAccountId: string;
  readonly currency: Currency;
  /** What the node forfeits (one hour of its lease's rate). */
  readonly amount: Money;
  readonly reason: string;
  readonly nowMs: number;
}

export interface SlashResult {
  /** Null when nothing could be taken (no stake, no unpaid earnings). */
  readonly transactionId: string | null;
  readonly owed: Money;
  /** Paid to the consumer in all: `fromStake + fromEarnings`. */
  readonly taken: Money;
  /** Of `taken`, what the node's stake paid (lease currency). */
  readonly fromStake: Money;
  /** Of `taken`, what the supplier's unpaid earnings paid (lease currency). */
  readonly fromEarnings: Money;
  /** TDM taken from the node's stake positions. */
  readonly stakeTaken: Money;
  readonly shortfall: Money;
}

/** What the supplier's earnings pay of `short`: directly, and converted from a payout currency. */
interface EarningsTake {
  readonly direct: Money;
  readonly converted: { taken: Money; credited: Money; rate: ExchangeRate } | undefined;
  readonly credited: Money;
}

export async function slash(
  tx: Tx,
  ledger: Ledger,
  rates: OracleRates,
  input: SlashInput,
): Promise<SlashResult> {
  const { currency, amount } = input;
  if (amount < 0n) throw new TandemError(ErrorCode.INTERNAL, `negative slash for ${input.leaseId}`);
  const key = `slash:${input.leaseId}`;
  const hash = requestHash(TransactionKind.SLASH, {
    clusterId: input.clusterId,
    leaseId: input.leaseId,
    nodeId: input.nodeId,
    supplierAccountId: input.supplierAccountId,
    consumerAccountId: input.consumerAccountId,
    currency,
    amount,
  });
  await ledger.lockKey(tx, key);
  const existing = await ledger.replay(tx, key, hash);
  if (existing !== undefined) return decodeSlash(existing.response);
  // Stake rows and their escrows are locked before the earnings and wallet (stakes.ts's order).
  const stake = await takeFromStake(tx, ledger, rates, {
    nodeId: input.nodeId,
    currency,
    owed: amount,
  });
  const fromStake = stake?.credited ?? ZERO;
  const earnings = await fromSupplierEarnings(tx, ledger, rates, input, sub(amount, fromStake));
  const taken = add(fromStake, earnings.credited);
  const answer = (transactionId: string | null): SlashResult => ({
    transactionId,
    owed: amount,
    taken,
    fromStake,
    fromEarnings: earnings.credited,
    stakeTaken: stake?.taken ?? ZERO,
    shortfall: sub(amount, taken),
  });
  if (taken === 0n) return answer(null);
  const { id } = await ledger.record(tx, {
    idempotencyKey: key,
    kind: TransactionKind.SLASH,
    requestHash: hash,
    accountId: input.supplierAccountId,
    clusterId: input.clusterId,
    leaseId: input.leaseId,
    exchangeRate:
      earnings.converted === undefined ? undefined : formatRate(inverse(earnings.converted.rate)),
    metadata: slashMetadata(input, answer(null), earnings, stake),
    response: (transactionId) => encodeSlash(answer(transactionId)),
    nowMs: input.nowMs,
    postings: [
      ...(stake === undefined ? [] : stakeSlashPostings(stake, currency)),
      ...earningsPostings(input, earnings),
      { account: walletAccount(input.consumerAccountId), currency, amount: taken, leg: Leg.SLASH },
    ],
  });
  if (stake !== undefined) await appendStakeSlashes(tx, stake, { ...input, transactionId: id });
  return answer(id);
}

/**
 * Up to `short` (lease currency) from the supplier's unpaid earnings: first in the lease's
 * currency; a supplier paid in another currency forfeits the rest from those earnings, ⌈short⌉
 * converted owed, what they hold taken, ⌊taken⌋ converted back credited.
 */
async function fromSupplierEarnings(
  tx: Tx,
  ledger: Ledger,
  rates: OracleRates,
  input: SlashInput,
  short: Money,
): Promise<EarningsTake> {
  const { currency } = input;
  const earnings = earningsAccount(input.supplierAccountId);
  const wallet = walletAccount(input.consumerAccountId);
  const balances = await ledger.lockBalances(tx, currency, [earnings, wallet]);
  const direct = min(balances.get(earnings) ?? ZERO, short);
  const chosen = await readPayoutCurrencies(tx, [input.supplierAccountId]);
  const rate = payoutRate(rates, currency, chosen.get(input.supplierAccountId));
  let converted: EarningsTake["converted"];
  if (direct < short && rate !== undefined) {
    const held = (await ledger.lockBalances(tx, rate.to, [earnings])).get(earnings) ?? ZERO;
    const taken = min(held, convertUp(sub(short, direct), rate));
    const credited = min(sub(short, direct), convert(taken, inverse(rate)));
    if (taken > 0n) converted = { taken, credited, rate };
  }
  return { direct, converted, credited: add(direct, converted?.credited ?? ZERO) };
}

function earningsPostings(input: SlashInput, take: EarningsTake): PostingInput[] {
  const { currency } = input;
  const earnings = earningsAccount(input.supplierAccountId);
  const postings: PostingInput[] = [
    { account: earnings, currency, amount: neg(take.direct), leg: Leg.SLASH },
  ];
  const c = take.converted;
  if (c !== undefined)
    postings.push(
      { account: earnings, currency: c.rate.to, amount: neg(c.taken), leg: Leg.SLASH },
      { account: TREASURY, currency: c.rate.to, amount: c.taken, leg: Leg.EXCHANGE },
      { account: TREASURY, currency, amount: neg(c.credited), leg: Leg.EXCHANGE },
    );
  return postings;
}

function slashMetadata(
  input: SlashInput,
  result: SlashResult,
  earnings: EarningsTake,
  stake: StakeSlash | undefined,
) {
  const c = earnings.converted;
  return {
    currency: input.currency,
    nodeId: input.nodeId,
    reason: input.reason,
    owed: formatMoney(result.owed),
    fromStake: formatMoney(result.fromStake),
    fromEarnings: formatMoney(result.fromEarnings),
    shortfall: formatMoney(result.shortfall),
    ...(stake === undefined ? {} : { stake: stakeSlashMetadata(stake) }),
    ...(c === undefined
      ? {}
      : {
          exchange: {
            ...describeRate(inverse(c.rate)),
            taken: formatMoney(c.taken),
            credited: formatMoney(c.credited),
          },
        }),
  };
}

function encodeSlash(result: SlashResult) {
  return {
    transactionId: result.transactionId,
    owed: result.owed.toString(),
    taken: result.taken.toString(),
    fromStake: result.fromStake.toString(),
    fromEarnings: result.fromEarnings.toString(),
    stakeTaken: result.stakeTaken.toString(),
    shortfall: result.shortfall.toString(),
  };
}

/** A stored answer; one from before stakes paid slashes was all earnings. */
function decodeSlash(stored: unknown): SlashResult {
  const s = stored as Partial<ReturnType<typeof encodeSlash>> & { owed: string; taken: string };
  return {
    transactionId: s.transactionId ?? null,
    owed: units(s.owed),
    taken: units(s.taken),
    fromStake: units(s.fromStake ?? "0"),
    fromEarnings: units(s.fromEarnings ?? s.taken),
    stakeTaken: units(s.stakeTaken ?? "0"),
    shortfall: units(s.shortfall ?? "0"),
  };
}
