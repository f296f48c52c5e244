import assert from "node:assert/strict";
import { test } from "node:test";
import { openBilling, type BillingHarness } from "../../../test/support/billing.ts";
import { forEachDatabase } from "../../../test/support/coordinator.ts";
import { ErrorCode, TandemError } from "../../core/errors.ts";
import { DEFAULT_FEE_SCHEDULE } from "../../core/fees.ts";
import { formatMoney, money, type Currency } from "../../core/money.ts";
import { IdPrefix, newId } from "../../protocol/ids.ts";
import { ledgerAudit } from "./audit.ts";
import { Billing, type SettleInput } from "./billing.ts";
import { Ledger } from "./ledger.ts";

const NOW = Date.UTC(2025, 0, 1);
const fmt = formatMoney;

/** A consumer paying `currency` for one node at `price` per hour for `minutes`, fully funded. */
async function deployed(h: BillingHarness, currency: Currency, price: string, minutes: number) {
  const consumer = await h.account(["consumer"]);
  const supplier = await h.account(["supplier"]);
  const clusterId = newId(IdPrefix.cluster);
  const quote = h.billing.quote({
    currency,
    durationMinutes: minutes,
    nodes: [{ nodeId: "node_0", pricePerHour: money(price) }],
  });
  await h.fund(consumer, currency, quote.consumerTotal);
  const input = { clusterId, consumerAccountId: consumer, quote, idempotencyKey: "d", nowMs: NOW };
  const charged = await h.billing.transaction((tx) => h.billing.chargeDeploy(tx, input));
  assert.equal(charged.ok, true);
  const lease = (servedMinutes: number): SettleInput => ({
    clusterId,
    leaseId: `lease_${clusterId}`,
    supplierAccountId: supplier,
    currency,
    pricePerHour: money(price),
    servedMinutes,
    nowMs: NOW,
  });
  const settle = (m: number) => h.billing.transaction((tx) => h.billing.settleLease(tx, lease(m)));
  return { consumer, supplier, clusterId, lease, settle };
}

forEachDatabase("supplier payout currency", (db) => {
  test("DESIGN §6's example paid out in TDM: the net converts at the oracle's rate, every currency balances", async (t) => {
    const h = await openBilling(db, t);
    const c = await deployed(h, "USDC", "1", 6000);
    assert.equal(await h.billing.payoutCurrency(c.supplier), null);
    await h.billing.setPayoutCurrency(c.supplier, "TDM", NOW);
    assert.equal(await h.billing.payoutCurrency(c.supplier), "TDM");

    const first = await c.settle(60);
    // 1.000000 USDC served: fee 0.002500, burn 0.005000, net 0.992500 USDC = 1.985000 TDM at 2 TDM/USD.
    assert.ok(first.ok);
    assert.equal(fmt(first.released.net), "0.992500");
    assert.deepEqual(
      first.payout && [fmt(first.payout.amount), first.payout.currency, first.payout.rate],
      ["1.985000", "TDM", "2.000000"],
    );
    const replay = await c.settle(60);
    assert.ok(replay.ok && replay.replayed);
    assert.deepEqual(replay.payout, first.payout);
    await c.settle(6000);

    assert.equal(fmt(await h.balanceOf(`earnings:${c.supplier}`, "TDM")), "198.500000");
    assert.equal(fmt(await h.balanceOf(`earnings:${c.supplier}`, "USDC")), "0.000000");
    // The treasury keeps the fees and the exchange's position: +99.25 USDC in, −198.5 TDM out.
    assert.equal(fmt(await h.balanceOf("treasury", "USDC")), "101.750000");
    assert.equal(fmt(await h.balanceOf("treasury", "TDM")), "-198.500000");
    assert.equal(fmt(await h.balanceOf("burn", "USDC")), "0.500000");

    const costs = await h.billing.costs(c.clusterId);
    assert.ok(costs);
    assert.deepEqual(
      [costs.currency, fmt(costs.served), fmt(costs.paidOut), fmt(costs.supplierFees)],
      ["USDC", "100.000000", "99.250000", "0.250000"],
    );
    assert.deepEqual(
      costs.payouts.map((p) => [p.currency, fmt(p.amount), p.rate]),
      [["TDM", "198.500000", "2.000000"]],
    );

    const history = await h.wallet.history(c.supplier, { limit: 10 });
    assert.equal(history.items.length, 2);
    for (const item of history.items) {
      assert.deepEqual(item.exchange, {
        from: "USDC",
        to: "TDM",
        rate: "2.000000",
        fromPerUsd: "1.000000",
        toPerUsd: "2.000000",
      });
      assert.deepEqual(
        item.entries.map((e) => [e.balance, e.currency, e.leg]),
        [["earnings", "TDM", "payout"]],
      );
    }

    const audit = await ledgerAudit(h.store.db);
    assert.equal(audit.ok, true);
    const byCurrency = Object.fromEntries(audit.currencies.map((a) => [a.currency, a]));
    assert.deepEqual(
      [byCurrency.USDC?.treasury, byCurrency.USDC?.exchange, byCurrency.TDM?.exchange],
      ["2.500000", "99.250000", "-198.500000"],
    );
  });

  test("conversion rounds down in the network's favour; back to the default pays in the consumer's currency", async (t) => {
    const h = await openBilling(db, t);
    // 1 TDM/h for 1 minute: G = ⌊1,000,000/60⌋ = 16,666 units; fee 41, burn 83, net 16,542 TDM
    // units → ⌊16,542 / 2⌋ = 8,271 USDC units.
    const c = await deployed(h, "TDM", "1", 120);
    await h.billing.setPayoutCurrency(c.supplier, "USDC", NOW);
    const one = await c.settle(1);
    assert.ok(one.ok);
    assert.deepEqual(
      [one.released.net, one.payout?.amount, one.payout?.rate],
      [16_542n, 8_271n, "0.500000"],
    );
    // G(3) = 50,000: Δgross 33,334, fee 125 − 41 = 84, burn 250 − 83 = 167, net 33,083: odd, so
    // the half unit stays with the exchange.
    const two = await c.settle(3);
    assert.ok(two.ok);
    assert.deepEqual([two.released.net, two.payout?.amount], [33_083n, 16_541n]);
    const three = await c.settle(4); // G(4) = 66,666: Δ 16,666; fee 41, burn 83, net 16,542
    assert.ok(three.ok);
    assert.equal(three.payout?.amount, 8_271n);

    await h.billing.setPayoutCurrency(c.supplier, null, NOW);
    const four = await c.settle(5);
    assert.ok(four.ok);
    assert.equal(four.payout, null);
    assert.equal(await h.balanceOf(`earnings:${c.supplier}`, "TDM"), four.released.net);
    assert.equal(await h.balanceOf(`earnings:${c.supplier}`, "USDC"), 8_271n + 16_541n + 8_271n);
    assert.equal((await ledgerAudit(h.store.db)).ok, true);
  });

  test("a slash takes a converted supplier's earnings in the payout currency, rounded for the network", async (t) => {
    const h = await openBilling(db, t);
    const c = await deployed(h, "USDC", "1", 600);
    await h.billing.setPayoutCurrency(c.supplier, "TDM", NOW);
    await c.settle(120); // net 1.985000 USDC → 3.970000 TDM
    const slash = (amount: string, leaseId: string) =>
      h.billing.transaction((tx) =>
        h.billing.slash(tx, {
          clusterId: c.clusterId,
          leaseId,
          nodeId: "node_0",
          supplierAccountId: c.supplier,
          consumerAccountId: c.consumer,
          currency: "USDC",
          amount: money(amount),
          reason: "node failed",
          nowMs: NOW,
        }),
      );
    const first = await slash("1.000000", "lease-a");
    assert.deepEqual([fmt(first.taken), fmt(first.shortfall)], ["1.000000", "0.000000"]);
    assert.equal(fmt(await h.balanceOf(`earnings:${c.supplier}`, "TDM")), "1.970000");
    // Owes 1.000001 USDC = ⌈2.000002⌉ TDM but holds 1.970000 TDM: all of it, ⌊0.985⌋ USDC back.
    const second = await slash("1.000001", "lease-b");
    assert.deepEqual([fmt(second.taken), fmt(second.shortfall)], ["0.985000", "0.015001"]);
    assert.equal(fmt(await h.balanceOf(`earnings:${c.supplier}`, "TDM")), "0.000000");
    const history = await h.wallet.history(c.consumer, { limit: 10 });
    const slashes = history.items.filter((i) => i.kind === "slash");
    assert.deepEqual(
      slashes.map((s) => s.exchange?.rate),
      ["0.500000", "0.500000"],
    );
    assert.equal((await ledgerAudit(h.store.db)).ok, true);
  });

  test("a currency the oracle does not quote cannot be chosen", async (t) => {
    const h = await openBilling(db, t);
    const supplier = await h.account(["supplier"]);
    const noTdm = new Billing(h.store.db, new Ledger(h.store.dialect), DEFAULT_FEE_SCHEDULE, {
      USD: 1_000_000n,
      USDC: 1_000_000n,
    });
    await assert.rejects(
      noTdm.setPayoutCurrency(supplier, "TDM", NOW),
      (e: unknown) => e instanceof TandemError && e.code === ErrorCode.VALIDATION_FAILED,
    );
    assert.equal(await noTdm.payoutCurrency(supplier), null);
  });
});
