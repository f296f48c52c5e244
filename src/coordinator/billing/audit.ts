import { sql } from "kysely";
import { CURRENCIES, formatWide, type Currency } from "../../core/money.ts";
import type { LedgerAudit } from "../../protocol/wallet.ts";
import { Leg, indexedByAccount } from "./ledger-accounts.ts";
import { readWideSum, wideSum } from "./wide-sum.ts";
import { supplyProblems, tokenSupply } from "../economics/supply.ts";
import type { ReadDb } from "../store/transaction.ts";

/**
 * The ledger audit (`tandem admin ledger-audit`), computed from the postings only — never from the
 * cached balances, which it checks instead. Per currency:
 *   deposits    = Σ wallet credits with leg `deposit`
 *   withdrawals = Σ external credits with leg `withdrawal`
 *   burned      = Σ postings on `burn`
 *   balances    = Σ postings on every internal account but `burn`
 *   treasury    = Σ postings on `treasury` but its `exchange` leg (the fees it collected)
 *   exchange    = Σ postings on `treasury` with leg `exchange`: the network exchange's position
 *                 (positive in a consumer's currency it took in, negative in a payout currency it
 *                 paid out); it is part of `balances`, so conversions leave the identity exact:
 *   conserved  ⇔ balances = deposits − withdrawals − burned
 * TDM's supply (economics/supply.ts): genesis + emitted − burned within its bounds.
 * Whole ledger: unbalanced (transaction, currency) pairs, transactions without postings and
 * postings without a transaction, guarded
 * accounts below zero, cached balances that differ from their postings.
 * The totals are sums over the whole ledger, so they are summed and reported wider than 64 bits
 * (wide-sum.ts): a ledger whose wallets together hold more than 2^63 units still audits.
 */
export async function ledgerAudit(db: ReadDb): Promise<LedgerAudit> {
  const total = wideSum(sql`amount`);
  const byKind = await sql<{
    currency: string;
    kind: string;
    leg: string;
    positive: number;
    high: string | null;
    low: string | null;
  }>`
    SELECT currency,
      CASE WHEN account LIKE 'external:%' THEN 'external'
           WHEN account LIKE 'wallet:%' THEN 'wallet'
           WHEN account LIKE 'escrow:%' THEN 'escrow'
           WHEN account LIKE 'earnings:%' THEN 'earnings'
           ELSE account END AS kind,
      leg, CASE WHEN amount > 0 THEN 1 ELSE 0 END AS positive,
      ${total.high} AS high, ${total.low} AS low
    FROM ledger_postings
    GROUP BY currency,
      CASE WHEN account LIKE 'external:%' THEN 'external'
           WHEN account LIKE 'wallet:%' THEN 'wallet'
           WHEN account LIKE 'escrow:%' THEN 'escrow'
           WHEN account LIKE 'earnings:%' THEN 'earnings'
           ELSE account END,
      leg, CASE WHEN amount > 0 THEN 1 ELSE 0 END`.execute(db);

  const perCurrency = new Map<
    Currency,
    {
      deposits: bigint;
      withdrawals: bigint;
      burned: bigint;
      treasury: bigint;
      exchange: bigint;
      internal: bigint;
    }
  >();
  for (const currency of CURRENCIES)
    perCurrency.set(currency, {
      deposits: 0n,
      withdrawals: 0n,
      burned: 0n,
      treasury: 0n,
      exchange: 0n,
      internal: 0n,
    });
  for (const row of byKind.rows) {
    const c = perCurrency.get(row.currency as Currency);
    if (c === undefined) continue;
    const amount = readWideSum(row.high, row.low);
    const positive = Number(row.positive) === 1;
    if (row.kind !== "external" && row.kind !== "burn") c.internal += amount;
    if (row.kind === "wallet" && row.leg === Leg.DEPOSIT && positive) c.deposits += amount;
    if (row.kind === "external" && row.leg === Leg.WITHDRAWAL && positive) c.withdrawals += amount;
    if (row.kind === "burn") c.burned += amount;
    if (row.kind === "treasury" && row.leg === Leg.EXCHANGE) c.exchange += amount;
    else if (row.kind === "treasury") c.treasury += amount;
  }

  const count = async (query: ReturnType<typeof sql<{ n: string | number }>>) =>
    Number((await query.execute(db)).rows[0]?.n ?? 0);
  const unbalanced =
    (await count(sql`SELECT COUNT(*) AS n FROM (SELECT transaction_id FROM ledger_postings
      GROUP BY transaction_id, currency HAVING SUM(amount) <> 0) u`)) +
    (await count(sql`SELECT COUNT(*) AS n FROM ledger_transactions t
      WHERE NOT EXISTS (SELECT 1 FROM ledger_postings p WHERE p.transaction_id = t.id)`)) +
    (await count(sql`SELECT COUNT(DISTINCT p.transaction_id) AS n FROM ledger_postings p
      WHERE NOT EXISTS (SELECT 1 FROM ledger_transactions t WHERE t.id = p.transaction_id)`));
  // One guarded account's postings sum, in posting order, through its past balances, each kept in
  // the 64-bit balance cache: these sums cannot overflow, so they stay plain SUMs compared in SQL.
  const guardedSums = sql`SELECT account, currency, SUM(amount) AS total FROM ledger_postings
      WHERE account LIKE 'wallet:%' OR account LIKE 'escrow:%' OR account LIKE 'earnings:%'
      GROUP BY account, currency`;
  const negative = await count(sql`SELECT COUNT(*) AS n FROM (${guardedSums}) g WHERE g.total < 0`);
  const mismatches =
    (await count(sql`SELECT COUNT(*) AS n FROM (${guardedSums}) g
      LEFT JOIN ledger_balances b ON b.account = g.account AND b.currency = g.currency
      WHERE b.balance IS NULL OR b.balance <> g.total`)) +
    (await count(sql`SELECT COUNT(*) AS n FROM ledger_balances b WHERE NOT EXISTS (
      SELECT 1 FROM ledger_postings p WHERE p.account = b.account AND p.currency = b.currency
        AND ${sql.raw(indexedByAccount("p"))})`));
  const transactions = await count(sql`SELECT COUNT(*) AS n FROM ledger_transactions`);
  const postings = await count(sql`SELECT COUNT(*) AS n FROM ledger_postings`);

  const currencies = CURRENCIES.map((currency) => {
    const c = perCurrency.get(currency)!;
    const balances = c.internal;
    const expected = c.deposits - c.withdrawals - c.burned;
    return {
      currency,
      deposits: formatWide(c.deposits),
      withdrawals: formatWide(c.withdrawals),
      burned: formatWide(c.burned),
      treasury: formatWide(c.treasury),
      exchange: formatWide(c.exchange),
      balances: formatWide(balances),
      conserved: balances === expected,
    };
  });
  const supply = await tokenSupply(db);
  const problems = supplyProblems(supply);
  return {
    currencies,
    transactions,
    postings,
    unbalancedTransactions: unbalanced,
    negativeBalances: negative,
    cacheMismatches: mismatches,
    supply: {
      genesis: formatWide(supply.genesis),
      emitted: formatWide(supply.emitted),
      burned: formatWide(supply.burned),
      totalSupply: formatWide(supply.totalSupply),
      maxSupply: formatWide(supply.maxSupply),
      problems,
    },
    ok:
      unbalanced === 0 &&
      negative === 0 &&
      mismatches === 0 &&
      problems.length === 0 &&
      currencies.every((c) => c.conserved),
  };
}
