import type { Kysely } from "kysely";
/**
 * Supplier payout currencies (issue 4 item 4). A supplier's earnings are paid in the currency the
 * consumer paid unless the supplier chose another (`payout_currencies`, migration 0009); then each
 * settlement converts the net amount through the network's exchange, held by the treasury (see
 * ledger-accounts.ts), at the price oracle's rate, rounded down (core/exchange.ts):
 *
 *   escrow:<clu>  C  −gross      (served)
 *   treasury      C  +fee        (supplier-fee)      burn  C  +burn  (burn)
 *   treasury      C  +net        (exchange)          ← the network takes the consumer's currency
 *   treasury      P  −converted  (exchange)          → and pays out the supplier's
 *   earnings:<s>  P  +converted  (payout)
 *
 * Each currency sums to zero, so the guard, the audit's conservation and the costs view hold
 * unchanged; the rate is recorded on the transaction (metadata and `exchange_rate`).
 * A currency the oracle does not quote cannot be chosen; should the oracle lose a quote later,
 * settlement pays in the consumer's currency rather than stop.
 */
import { ErrorCode, TandemError } from "../../core/errors.ts";
import {
  convert,
  describeRate,
  exchangeRate,
  type ExchangeRate,
  type OracleRates,
} from "../../core/exchange.ts";
import type { SettlementFigures } from "../../core/fees.ts";
import { isCurrency, neg, type Currency, type Money } from "../../core/money.ts";
import { BURN, Leg, TREASURY, earningsAccount, escrowAccount } from "./ledger-accounts.ts";
import type { PostingInput } from "./ledger.ts";
import type { Database } from "../store/schema.ts";

/** Every account's chosen payout currency among `accountIds` (absent: the consumer's). */
export async function readPayoutCurrencies(
  tx: Kysely<Database>,
  accountIds: readonly string[],
): Promise<Map<string, Currency>> {
  const chosen = new Map<string, Currency>();
  const unique = [...new Set(accountIds)];
  for (let i = 0; i < unique.length; i += 500) {
    const rows = await tx
      .selectFrom("payout_currencies")
      .select(["account_id", "currency"])
      .where("account_id", "in", unique.slice(i, i + 500))
      .execute();
    for (const row of rows) if (isCurrency(row.currency)) chosen.set(row.account_id, row.currency);
  }
  return chosen;
}

/** Sets (or with null clears) an account's payout currency; refuses one the oracle cannot price. */
export async function writePayoutCurrency(
  db: Kysely<Database>,
  rates: OracleRates,
  accountId: string,
  currency: Currency | null,
  nowMs: number,
): Promise<void> {
  if (currency === null) {
    await db.deleteFrom("payout_currencies").where("account_id", "=", accountId).execute();
    return;
  }
  if (rates[currency] === undefined || rates[currency] <= 0n)
    throw new TandemError(ErrorCode.VALIDATION_FAILED, `no price oracle rate for ${currency}`, {
      details: { currency },
    });
  await db
    .insertInto("payout_currencies")
    .values({ account_id: accountId, currency, updated_at: nowMs })
    .onConflict((oc) => oc.column("account_id").doUpdateSet({ currency, updated_at: nowMs }))
    .execute();
}

/** The rate a settlement in `from` pays a supplier who chose `chosen` with; undefined: no conversion. */
export function payoutRate(
  rates: OracleRates,
  from: Currency,
  chosen: Currency | undefined,
): ExchangeRate | undefined {
  if (chosen === undefined || chosen === from) return undefined;
  if (rates[from] === undefined || rates[chosen] === undefined) return undefined;
  return exchangeRate(rates, from, chosen);
}

/** What a supplier receives for `net` of the lease's currency, when converted. */
export interface Payout {
  readonly currency: Currency;
  readonly amount: Money;
  readonly rate: ExchangeRate;
}

/** A settlement's postings (see the header) and, when converted, what the supplier got. */
export function settlementPostings(
  clusterId: string,
  supplierAccountId: string,
  currency: Currency,
  delta: SettlementFigures,
  rate: ExchangeRate | undefined,
): { postings: PostingInput[]; payout: Payout | undefined } {
  const postings: PostingInput[] = [
    { account: escrowAccount(clusterId), currency, amount: neg(delta.gross), leg: Leg.SERVED },
    { account: TREASURY, currency, amount: delta.supplierFee, leg: Leg.SUPPLIER_FEE },
    { account: BURN, currency, amount: delta.burn, leg: Leg.BURN },
  ];
  const earnings = earningsAccount(supplierAccountId);
  if (rate === undefined) {
    postings.push({ account: earnings, currency, amount: delta.net, leg: Leg.PAYOUT });
    return { postings, payout: undefined };
  }
  const amount = convert(delta.net, rate);
  postings.push(
    { account: TREASURY, currency, amount: delta.net, leg: Leg.EXCHANGE },
    { account: TREASURY, currency: rate.to, amount: neg(amount), leg: Leg.EXCHANGE },
    { account: earnings, currency: rate.to, amount, leg: Leg.PAYOUT },
  );
  return { postings, payout: { currency: rate.to, amount, rate } };
}

/** The payout as stored in a settlement's answer and metadata. */
export function encodePayout(payout: Payout) {
  return {
    ...describeRate(payout.rate),
    currency: payout.currency,
    amount: payout.amount.toString(),
  };
}
