/**
 * Wallet history reads an account's postings through the postings' account index, which leaves
 * out `treasury` and `burn` (migration 0012): the query must repeat the index's predicate, or
 * SQLite ignores a partial index and scans every posting of the ledger.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { CompiledQuery, sql, type Compilable } from "kysely";
import { openBilling } from "../../../test/support/billing.ts";
import { forEachDatabase } from "../../../test/support/coordinator.ts";
import { units } from "../../core/money.ts";
import { Leg, TransactionKind, externalAccount, walletAccount } from "./ledger-accounts.ts";
import { Ledger, inTransaction } from "./ledger.ts";

const NOW = Date.UTC(2026, 10, 25);
const ACCOUNTS = 400;
const DEPOSITS_EACH = 10;

forEachDatabase("wallet history", (db) => {
  test("pages come from the postings' account index, not a scan of the ledger", async (t) => {
    const h = await openBilling(db, t);
    const ledger = new Ledger(h.store.dialect);
    const accountIds = Array.from(
      { length: ACCOUNTS },
      (_, i) => `acct_${String(i).padStart(26, "0")}`,
    );
    // 8,000 postings over 400 wallets: enough for a planner to weigh the index against a scan.
    await inTransaction(h.store.db, (tx) =>
      ledger.recordMany(
        tx,
        Array.from({ length: ACCOUNTS * DEPOSITS_EACH }, (_, i) => ({
          idempotencyKey: `plan:${i}`,
          kind: TransactionKind.DEPOSIT,
          requestHash: `h${i}`,
          accountId: accountIds[i % ACCOUNTS]!,
          metadata: {},
          response: (id: string) => ({ id }),
          nowMs: NOW + i,
          postings: [
            {
              account: externalAccount("manual"),
              currency: "USDC",
              amount: units(-1),
              leg: Leg.DEPOSIT,
            },
            {
              account: walletAccount(accountIds[i % ACCOUNTS]!),
              currency: "USDC",
              amount: units(1),
              leg: Leg.DEPOSIT,
            },
          ],
        })),
      ),
    );
    await sql`ANALYZE`.execute(h.store.db);
    const plan = async (query: Compilable<unknown>) => {
      const { sql: text, parameters } = query.compile();
      const explain = h.store.dialect === "sqlite" ? "EXPLAIN QUERY PLAN " : "EXPLAIN ";
      const { rows } = await h.store.db.executeQuery<Record<string, string>>(
        CompiledQuery.raw(explain + text, [...parameters]),
      );
      return rows.map((r) => r.detail ?? r["QUERY PLAN"]).join("\n");
    };
    const account = accountIds[7]!;
    for (const page of [
      { limit: 20 },
      { limit: 20, currency: "USDC" as const },
      { limit: 20, cursor: "tx_zzzzzzzzzzzzzzzzzzzzzzzzzz" },
    ]) {
      const text = await plan(h.wallet.historyIdsQuery(account, page));
      assert.match(text, /ledger_postings_account/, `${JSON.stringify(page)}:\n${text}`);
      assert.doesNotMatch(text, /SCAN ledger_postings\b|Seq Scan on ledger_postings/, text);
    }
    const history = await h.wallet.history(account, { limit: 20 });
    assert.equal(history.items.length, DEPOSITS_EACH);
  });
});
