/**
 * The billing subsystem over a fresh store, wired as the composition root wires it: for tests of
 * Billing and WalletService themselves (and the ledger property tests).
 */
import assert from "node:assert/strict";
import type { TestContext } from "node:test";
import { sql } from "kysely";
import { Billing, type SettleInput } from "../../src/coordinator/billing/billing.ts";
import { Ledger } from "../../src/coordinator/billing/ledger.ts";
import { ManualRail } from "../../src/coordinator/billing/payment-rail.ts";
import { WalletService } from "../../src/coordinator/billing/wallet.ts";
import { AccountRegistry } from "../../src/coordinator/registry/accounts.ts";
import { DEFAULT_FEE_SCHEDULE } from "../../src/core/fees.ts";
import { money, units, type Currency, type Money } from "../../src/core/money.ts";
import { IdPrefix, newId } from "../../src/protocol/ids.ts";
import type { DatabaseUnderTest, TestStore } from "./coordinator.ts";

export interface BillingHarness {
  store: TestStore;
  billing: Billing;
  wallet: WalletService;
  accounts: AccountRegistry;
  /** A new account with the given roles. */
  account(roles?: Array<"consumer" | "supplier">): Promise<string>;
  /** Credits a wallet through the manual rail. */
  fund(accountId: string, currency: Currency, amount: Money): Promise<void>;
  /** Every guarded balance, `account currency amount`, sorted. */
  balances(): Promise<string[]>;
  /** One ledger account's balance from the postings. */
  balanceOf(account: string, currency: Currency): Promise<Money>;
  /** Row counts of the ledger tables. */
  counts(): Promise<{ transactions: number; postings: number }>;
}

let keys = 0;

export async function openBilling(db: DatabaseUnderTest, t: TestContext): Promise<BillingHarness> {
  const store = await db.openStore();
  t.after(() => store.dispose());
  const ledger = new Ledger(store.dialect);
  const billing = new Billing(store.db, ledger, DEFAULT_FEE_SCHEDULE);
  const wallet = new WalletService(store.db, ledger, new ManualRail());
  const accounts = new AccountRegistry(store.db);
  return {
    store,
    billing,
    wallet,
    accounts,
    async account(roles = ["consumer", "supplier"]) {
      return (await accounts.createAccount(roles, Date.now())).accountId;
    },
    async fund(accountId, currency, amount) {
      await wallet.deposit({
        requestedBy: "test",
        idempotencyKey: `fund-${++keys}`,
        accountId,
        currency,
        amount,
        nowMs: Date.now(),
      });
    },
    async balances() {
      const rows = await store.db
        .selectFrom("ledger_balances")
        .select(["account", "currency", sql<string>`CAST(balance AS TEXT)`.as("balance")])
        .execute();
      return rows.map((r) => `${r.account} ${r.currency} ${r.balance}`).sort();
    },
    async balanceOf(account, currency) {
      const row = await store.db
        .selectFrom("ledger_postings")
        .select(sql<string | null>`CAST(SUM(amount) AS TEXT)`.as("total"))
        .where("account", "=", account)
        .where("currency", "=", currency)
        .executeTakeFirst();
      return units(row?.total ?? 0);
    },
    async counts() {
      const t = await sql<{
        n: string;
      }>`SELECT CAST(COUNT(*) AS TEXT) AS n FROM ledger_transactions`.execute(store.db);
      const p = await sql<{
        n: string;
      }>`SELECT CAST(COUNT(*) AS TEXT) AS n FROM ledger_postings`.execute(store.db);
      return { transactions: Number(t.rows[0]?.n), postings: Number(p.rows[0]?.n) };
    },
  };
}

/** The instant billing tests give their operations. */
export const TEST_NOW = Date.UTC(2025, 0, 1);

/**
 * A consumer funded with `funds` (default 1000 USDC) and a deploy of `nodes` nodes at `price` per
 * hour for `minutes`, charged; `lease(i, minutes)` is node i's settlement input.
 */
export async function deployed(
  h: BillingHarness,
  opts: {
    funds?: string;
    price?: string;
    minutes?: number;
    nodes?: number;
    currency?: Currency;
  } = {},
) {
  const currency = opts.currency ?? "USDC";
  const consumer = await h.account(["consumer"]);
  const supplier = await h.account(["supplier"]);
  const clusterId = newId(IdPrefix.cluster);
  await h.fund(consumer, currency, money(opts.funds ?? "1000"));
  const quote = h.billing.quote({
    currency,
    durationMinutes: opts.minutes ?? 6000,
    nodes: Array.from({ length: opts.nodes ?? 1 }, (_, i) => ({
      nodeId: `node_${i}`,
      pricePerHour: money(opts.price ?? "1"),
    })),
  });
  const charged = await h.billing.transaction((tx) =>
    h.billing.chargeDeploy(tx, {
      clusterId,
      consumerAccountId: consumer,
      quote,
      idempotencyKey: `deploy-${clusterId}`,
      nowMs: TEST_NOW,
    }),
  );
  assert.equal(charged.ok, true);
  const lease = (i: number, servedMinutes: number, price = opts.price ?? "1"): SettleInput => ({
    clusterId,
    leaseId: `lease_${clusterId}_${i}`,
    supplierAccountId: supplier,
    currency,
    pricePerHour: money(price),
    servedMinutes,
    nowMs: TEST_NOW,
  });
  return { consumer, supplier, clusterId, quote, lease };
}
