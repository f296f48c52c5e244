/**
 * Amounts at their bounds, on SQLite and PostgreSQL: every amount and price a request carries is
 * checked against one bound (protocol/amounts.ts) and refused with `INVALID_AMOUNT` naming the
 * field; balances near 2^63 (which no request can reach now, so a test writes them through the
 * wallet service) audit and read exactly, where SUM used to overflow; a credit past a stored
 * balance's range is refused, not a 500; a computed charge (quote, deploy, extension, autoscale
 * prepay) above the bound is refused the same way and writes nothing.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { sql } from "kysely";
import { Ledger } from "../src/coordinator/billing/ledger.ts";
import { ManualRail } from "../src/coordinator/billing/payment-rail.ts";
import { WalletService } from "../src/coordinator/billing/wallet.ts";
import { readWideSum, wideSum } from "../src/coordinator/billing/wide-sum.ts";
import { MAX_UNITS, units } from "../src/core/money.ts";
import { MAX_AMOUNT, MAX_PRICE_PER_HOUR } from "../src/protocol/amounts.ts";
import {
  ManualClock,
  assertError,
  dumpDatabase,
  forEachDatabase,
  httpRequest,
  type RawResponse,
  type TestCoordinator,
} from "./support/coordinator.ts";
import { availableWorker } from "./support/workers.ts";

/** What the ledger holds, to compare before and after a refused request. */
async function ledgerRows(tc: TestCoordinator) {
  const db = tc.coordinator.store.db;
  const { rows } = await sql<{ n: string }>`SELECT CAST(COUNT(*) AS TEXT) AS n FROM ledger_postings
    UNION ALL SELECT CAST(COUNT(*) AS TEXT) FROM ledger_transactions`.execute(db);
  return rows.map((r) => r.n);
}

function deposit(tc: TestCoordinator, accountId: string, amount: string) {
  return httpRequest(tc.url, "POST", "/v1/wallet/deposits", {
    apiKey: tc.adminKey,
    headers: { "idempotency-key": crypto.randomUUID() },
    body: { accountId, currency: "USDC", amount },
  });
}

const NEAR_MAX = units(MAX_UNITS - 1n);

forEachDatabase("amounts", (db) => {
  test("an amount above the one bound is INVALID_AMOUNT naming the field; the bound itself is accepted", async (t) => {
    const tc = await db.startCoordinator();
    t.after(() => tc.close());
    const user = await tc.signUp(["consumer", "supplier"]);
    const before = await ledgerRows(tc);

    for (const amount of ["1000000000.000001", "9223372036854.775807", "9223372036854.775808"]) {
      const refused = assertError(await deposit(tc, user.accountId, amount), 400, "INVALID_AMOUNT");
      assert.deepEqual(refused.details, { problem: "TOO_LARGE", field: "amount", max: MAX_AMOUNT });
    }
    const withdrawal = await httpRequest(tc.url, "POST", "/v1/wallet/withdrawals", {
      apiKey: user.apiKey,
      headers: { "idempotency-key": "w-1" },
      body: { currency: "USDC", amount: "1000000001", from: "wallet" },
    });
    assert.equal(assertError(withdrawal, 400, "INVALID_AMOUNT").details?.field, "amount");
    assert.deepEqual(await ledgerRows(tc), before);

    assert.equal((await deposit(tc, user.accountId, MAX_AMOUNT)).status, 201);
    assert.equal((await deposit(tc, user.accountId, MAX_AMOUNT)).status, 201);
    const view = await user.client.wallet();
    assert.equal(view.balances.find((b) => b.currency === "USDC")?.wallet, "2000000000.000000");
  });

  test("a price above the bound is INVALID_AMOUNT naming the field, on a node price and a search", async (t) => {
    const tc = await db.startCoordinator({ config: { pricingMode: "market" } });
    t.after(() => tc.close());
    const user = await tc.signUp(["consumer", "supplier"]);
    const setPrice = (pricePerHour: string) =>
      httpRequest(tc.url, "PUT", "/v1/nodes/node_00000000000000000000000000/price", {
        apiKey: user.apiKey,
        body: { pricePerHour },
      });
    assert.deepEqual(assertError(await setPrice("9223372036854"), 400, "INVALID_AMOUNT").details, {
      problem: "TOO_LARGE",
      field: "pricePerHour",
      max: MAX_PRICE_PER_HOUR,
    });
    const negative = await setPrice("-1");
    assert.equal(assertError(negative, 400, "INVALID_AMOUNT").details?.problem, "NEGATIVE");
    const search = await httpRequest(tc.url, "POST", "/v1/quotes", {
      apiKey: user.apiKey,
      body: { nodes: 1, hours: 1, currency: "USDC", maxPricePerHour: "1000.000001" },
    });
    assert.equal(assertError(search, 400, "INVALID_AMOUNT").details?.field, "maxPricePerHour");
  });

  test("wallets holding near 2^63 each audit exactly; a credit past a balance's range is refused", async (t) => {
    const tc = await db.startCoordinator();
    t.after(() => tc.close());
    const a = await tc.signUp(["consumer"]);
    const b = await tc.signUp(["consumer"]);
    const { store } = tc.coordinator;
    const wallet = new WalletService(store.db, new Ledger(store.dialect), new ManualRail());
    for (const [i, accountId] of [a.accountId, b.accountId].entries()) {
      await wallet.deposit({
        requestedBy: "test",
        idempotencyKey: `near-max-${i}`,
        accountId,
        currency: "USDC",
        amount: NEAR_MAX,
        nowMs: Date.now(),
      });
    }
    const audit = await httpRequest(tc.url, "GET", "/v1/admin/ledger-audit", {
      apiKey: tc.adminKey,
    });
    assert.equal(audit.status, 200, audit.text);
    const usdc = (
      audit.json as { ok: boolean; currencies: Array<Record<string, unknown>> }
    ).currencies.find((c) => c.currency === "USDC");
    assert.equal((audit.json as { ok: boolean }).ok, true);
    assert.equal(usdc?.deposits, "18446744073709.551612");
    assert.equal(usdc?.balances, "18446744073709.551612");
    assert.equal(usdc?.conserved, true);

    const before = await ledgerRows(tc);
    const over = assertError(await deposit(tc, a.accountId, "0.000002"), 400, "INVALID_AMOUNT");
    assert.equal(over.details?.problem, "TOO_LARGE");
    assert.deepEqual(await ledgerRows(tc), before);
    assert.equal((await deposit(tc, a.accountId, "0.000001")).status, 201);
    const view = await a.client.wallet();
    assert.equal(view.balances.find((x) => x.currency === "USDC")?.wallet, "9223372036854.775807");
  });

  test("wide sums are exact past the 64-bit range, with negatives and no rows", async (t) => {
    const store = await db.openStore();
    t.after(() => store.dispose());
    await sql`CREATE TABLE wide_sum_probe (g INTEGER NOT NULL, amount BIGINT NOT NULL)`.execute(
      store.db,
    );
    const values = [MAX_UNITS, MAX_UNITS, MAX_UNITS, -5n, -MAX_UNITS - 1n, 1n, 4294967295n];
    for (const v of values) {
      await sql`INSERT INTO wide_sum_probe (g, amount) VALUES (1, ${v.toString()})`.execute(
        store.db,
      );
    }
    const sum = wideSum(sql`amount`);
    const { rows } = await sql<{ high: string | null; low: string | null }>`
      SELECT ${sum.high} AS high, ${sum.low} AS low FROM wide_sum_probe`.execute(store.db);
    assert.equal(
      readWideSum(rows[0]!.high, rows[0]!.low),
      values.reduce((s, v) => s + v, 0n),
    );
    const none = await sql<{ high: string | null; low: string | null }>`
      SELECT ${sum.high} AS high, ${sum.low} AS low FROM wide_sum_probe WHERE g = 2`.execute(
      store.db,
    );
    assert.equal(readWideSum(none.rows[0]!.high, none.rows[0]!.low), 0n);
  });

  test("a quote, deploy, extension or autoscale prepay above the bound is refused and writes nothing", async (t) => {
    const tc = await db.startCoordinator({
      clock: new ManualClock(),
      config: {
        // TDM worth so little that one CPU node (0.02 USD an hour) costs 10,000,000 TDM an
        // hour: an hour fits the bound, 720 hours, a 200-node prepay or a long extension do not.
        tdmPerUsdUnits: 500_000_000_000_000n,
        livenessSweepMs: 0,
        schedulerTickMs: 86_400_000,
      },
    });
    t.after(() => tc.close());
    const supplier = await tc.signUp(["supplier"]);
    const consumer = await tc.signUp(["consumer"]);
    const worker = await availableWorker(tc, supplier.apiKey, "eu-west-a");
    t.after(() => worker.socket.terminate());
    await tc
      .client(tc.adminKey)
      .deposit({ accountId: consumer.accountId, currency: "TDM", amount: "20000000" });
    await eventuallyAvailable(tc, 1);

    const send = (method: string, path: string, body: unknown) =>
      httpRequest(tc.url, method, path, {
        apiKey: consumer.apiKey,
        headers: { "idempotency-key": crypto.randomUUID() },
        body,
      });
    const filters = { nodes: 1, gpuModel: "cpu", currency: "TDM" };
    const cluster = { ...filters, kind: "batch", command: ["true"] };
    const refusedTotal = (answer: RawResponse) => {
      const error = assertError(answer, 400, "INVALID_AMOUNT");
      assert.equal(error.details?.field, "total");
      assert.equal(error.details?.max, MAX_AMOUNT);
    };

    const quote = await send("POST", "/v1/quotes", { ...filters, hours: 1 });
    assert.equal(quote.status, 200, quote.text);
    refusedTotal(await send("POST", "/v1/quotes", { ...filters, hours: 720 }));

    const before = await dumpDatabase(tc.coordinator.store);
    refusedTotal(await send("POST", "/v1/clusters", { ...cluster, hours: 720 }));
    refusedTotal(
      await send("POST", "/v1/clusters", { ...cluster, hours: 1, autoscale: { min: 1, max: 200 } }),
    );
    assert.deepEqual(await dumpDatabase(tc.coordinator.store), before);

    const deployed = await send("POST", "/v1/clusters", { ...cluster, hours: 1 });
    assert.equal(deployed.status, 201, deployed.text);
    const id = (deployed.json as { id: string }).id;
    const ledger = await ledgerRows(tc);
    refusedTotal(await send("POST", `/v1/clusters/${id}/extend`, { hours: 200 }));
    assert.deepEqual(await ledgerRows(tc), ledger);
    assert.equal((await consumer.client.getCluster(id)).hours, 1);
  });
});

async function eventuallyAvailable(tc: TestCoordinator, nodes: number): Promise<void> {
  for (let i = 0; i < 500; i++) {
    if ((await tc.client().networkStats()).nodes.byStatus.available === nodes) return;
    await new Promise((r) => setTimeout(r, 20));
  }
  throw new Error(`never ${nodes} available nodes`);
}
