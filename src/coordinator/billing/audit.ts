import { sql } from "kysely";
import {
  CURRENCIES,
  ZERO,
  add,
  formatMoney,
  sub,
  units,
  type Currency,
  type Money,
} from "../../core/money.ts";
import type { LedgerAudit } from "../../protocol/wallet.ts";
import { Leg, indexedByAccount } from "./ledger-accounts.ts";
import type { Tx } from "./ledger.ts";

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
 * Whole ledger: unbalanced (transaction, currency) pairs, transactions without postings and
 * postings without a transaction, guarded
 * accounts below zero, cached balances that differ from their postings.
 */
export async function ledgerAudit(db: Tx): Promise<LedgerAudit> {
  const byKind = await sql<{
    currency: string;
    kind: string;
    leg: string;
    positive: number;
    total: string;
  }>`
    SELECT currency,
      CASE WHEN account LIKE 'external:%' THEN 'external'
           WHEN account LIKE 'wallet:%' THEN 'wallet'
           WHEN account LIKE 'escrow:%' THEN 'escrow'
           WHEN account LIKE 'earnings:%' THEN 'earnings'
           ELSE account END AS kind,
      leg, CASE WHEN amount > 0 THEN 1 ELSE 0 END AS positive,
      CAST(SUM(amount) AS TEXT) AS total
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
      deposits: Money;
      withdrawals: Money;
      burned: Money;
      treasury: Money;
      exchange: Money;
      internal: Money;
    }
  >();
  for (const currency of CURRENCIES)
    perCurrency.set(currency, {
      deposits: ZERO,
      withdrawals: ZERO,
      burned: ZERO,
      treasury: ZERO,
      exchange: ZERO,
      internal: ZERO,
    });
  for (const row of byKind.rows) {
    const c = perCurrency.get(row.currency as Currency);
    if (c === undefined) continue;
    const amount = units(row.total);
    const positive = Number(row.positive) === 1;
    if (row.kind !== "external" && row.kind !== "burn") c.internal = add(c.internal, amount);
    if (row.kind === "wallet" && row.leg === Leg.DEPOSIT && positive)
      c.deposits = add(c.deposits, amount);
    if (row.kind === "external" && row.leg === Leg.WITHDRAWAL && positive)
      c.withdrawals = add(c.withdrawals, amount);
    if (row.kind === "burn") c.burned = add(c.burned, amount);
    if (row.kind === "treasury" && row.leg === Leg.EXCHANGE) c.exchange = add(c.exchange, amount);
    else if (row.kind === "treasury") c.treasury = add(c.treasury, amount);
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
    const expected = sub(sub(c.deposits, c.withdrawals), c.burned);
    return {
      currency,
      deposits: formatMoney(c.deposits),
      withdrawals: formatMoney(c.withdrawals),
      burned: formatMoney(c.burned),
      treasury: formatMoney(c.treasury),
      exchange: formatMoney(c.exchange),
      balances: formatMoney(balances),
      conserved: balances === expected,
    };
  });
  return {
    currencies,
    transactions,
    postings,
    unbalancedTransactions: unbalanced,
    negativeBalances: negative,
    cacheMismatches: mismatches,
    ok:
      unbalanced === 0 &&
      negative === 0 &&
      mismatches === 0 &&
      currencies.every((c) => c.conserved),
  };
}
