import assert from "node:assert/strict";
import { test } from "node:test";
import { TEST_NOW, deployed, openBilling } from "../../../test/support/billing.ts";
import { forEachDatabase } from "../../../test/support/coordinator.ts";
import { ErrorCode, TandemError } from "../../core/errors.ts";
import { add, formatMoney, money, type Money } from "../../core/money.ts";
import { IdPrefix, newId } from "../../protocol/ids.ts";

const NOW = TEST_NOW;
const code = (c: string) => (error: unknown) => error instanceof TandemError && error.code === c;

const fmt = (m: Money) => formatMoney(m);

forEachDatabase("billing", (db) => {
  test("DESIGN §6's worked example, end to end: charge, settle every minute, nothing to refund", async (t) => {
    const h = await openBilling(db, t);
    const c = await deployed(h, { funds: "102.25" });
    assert.equal(fmt(await h.balanceOf(`wallet:${c.consumer}`, "USDC")), "0.000000");
    assert.equal(fmt(await h.balanceOf(`escrow:${c.clusterId}`, "USDC")), "100.000000");
    assert.equal(fmt(await h.balanceOf("treasury", "USDC")), "2.250000");
    // Settle in uneven steps up to 100 h.
    for (const m of [1, 2, 59, 60, 61, 599, 3000, 5999, 6000]) {
      const r = await h.billing.transaction((tx) => h.billing.settleLease(tx, c.lease(0, m)));
      assert.equal(r.ok, true);
    }
    const refund = await h.billing.transaction((tx) =>
      h.billing.refundRemainder(tx, {
        clusterId: c.clusterId,
        consumerAccountId: c.consumer,
        currency: "USDC",
        nowMs: NOW,
      }),
    );
    assert.equal(refund.refunded, 0n);
    assert.equal(fmt(await h.balanceOf(`earnings:${c.supplier}`, "USDC")), "99.250000");
    assert.equal(fmt(await h.balanceOf("treasury", "USDC")), "2.500000");
    assert.equal(fmt(await h.balanceOf("burn", "USDC")), "0.500000");
    assert.equal(fmt(await h.balanceOf(`escrow:${c.clusterId}`, "USDC")), "0.000000");
    const costs = await h.billing.costs(c.clusterId);
    assert.equal(costs && fmt(costs.charged), "102.250000");
    assert.equal(costs && fmt(costs.served), "100.000000");
  });

  test("a deploy the wallet cannot pay is INSUFFICIENT_FUNDS and writes nothing", async (t) => {
    const h = await openBilling(db, t);
    const consumer = await h.account(["consumer"]);
    await h.fund(consumer, "USDC", money("102.249999"));
    const before = { counts: await h.counts(), balances: await h.balances() };
    const quote = h.billing.quote({
      currency: "USDC",
      durationMinutes: 6000,
      nodes: [{ nodeId: "n", pricePerHour: money("1") }],
    });
    const result = await h.billing.transaction((tx) =>
      h.billing.chargeDeploy(tx, {
        clusterId: newId(IdPrefix.cluster),
        consumerAccountId: consumer,
        quote,
        idempotencyKey: "k",
        nowMs: NOW,
      }),
    );
    assert.deepEqual(result, {
      ok: false,
      code: "INSUFFICIENT_FUNDS",
      details: {
        account: `wallet:${consumer}`,
        currency: "USDC",
        required: "102.250000",
        available: "102.249999",
      },
    });
    assert.deepEqual({ counts: await h.counts(), balances: await h.balances() }, before);
  });

  test("charges are idempotent, once per cluster, and join the caller's transaction", async (t) => {
    const h = await openBilling(db, t);
    const c = await deployed(h);
    const before = { counts: await h.counts(), balances: await h.balances() };
    const input = {
      clusterId: c.clusterId,
      consumerAccountId: c.consumer,
      quote: c.quote,
      idempotencyKey: `deploy-${c.clusterId}`,
      nowMs: NOW + 5,
    };
    const replay = await h.billing.transaction((tx) => h.billing.chargeDeploy(tx, input));
    assert.equal(replay.ok && replay.replayed, true);
    assert.equal(replay.ok && fmt(replay.charged), "102.250000");
    assert.deepEqual({ counts: await h.counts(), balances: await h.balances() }, before);

    const other = h.billing.quote({
      ...c.quote,
      nodes: [{ nodeId: "x", pricePerHour: money("2") }],
    });
    await assert.rejects(
      h.billing.transaction((tx) => h.billing.chargeDeploy(tx, { ...input, quote: other })),
      code(ErrorCode.IDEMPOTENCY_CONFLICT),
    );
    await assert.rejects(
      h.billing.transaction((tx) =>
        h.billing.chargeDeploy(tx, { ...input, idempotencyKey: "another" }),
      ),
      code(ErrorCode.CONFLICT),
    );
    // A charge inside a transaction that fails afterwards leaves no trace.
    const consumer = await h.account(["consumer"]);
    await h.fund(consumer, "USDC", money("500"));
    const mid = { counts: await h.counts(), balances: await h.balances() };
    await assert.rejects(
      h.billing.transaction(async (tx) => {
        const r = await h.billing.chargeDeploy(tx, {
          ...input,
          clusterId: newId(IdPrefix.cluster),
          consumerAccountId: consumer,
          idempotencyKey: "rolled-back",
        });
        assert.equal(r.ok, true);
        throw new Error("no capacity after all");
      }),
      /no capacity/,
    );
    assert.deepEqual({ counts: await h.counts(), balances: await h.balances() }, mid);
  });

  test("extensions follow a deploy charge, by the same payer in the same currency", async (t) => {
    const h = await openBilling(db, t);
    const c = await deployed(h, { minutes: 90, price: "0.000007" });
    const ext = h.billing.quoteExtension({
      currency: "USDC",
      paidMinutes: 90,
      durationMinutes: 30,
      nodes: [{ nodeId: "node_0", pricePerHour: money("0.000007") }],
    });
    const input = {
      clusterId: c.clusterId,
      consumerAccountId: c.consumer,
      quote: ext,
      idempotencyKey: "ext-1",
      nowMs: NOW,
    };
    await assert.rejects(
      h.billing.transaction((tx) =>
        h.billing.chargeExtension(tx, { ...input, clusterId: newId(IdPrefix.cluster) }),
      ),
      code(ErrorCode.CONFLICT),
    );
    const stranger = await h.account(["consumer"]);
    await h.fund(stranger, "USDC", money("10"));
    await assert.rejects(
      h.billing.transaction((tx) =>
        h.billing.chargeExtension(tx, { ...input, consumerAccountId: stranger }),
      ),
      code(ErrorCode.CONFLICT),
    );
    const r = await h.billing.transaction((tx) => h.billing.chargeExtension(tx, input));
    assert.equal(r.ok, true);
    // ⌊7 × 90/60⌋ = 10 units, then ⌊7 × 120/60⌋ − 10 = 4: escrow is exactly G(120) = 14.
    assert.equal(await h.balanceOf(`escrow:${c.clusterId}`, "USDC"), 14n);
    const settled = await h.billing.transaction((tx) =>
      h.billing.settleLease(tx, c.lease(0, 120, "0.000007")),
    );
    assert.equal(settled.ok && settled.total.gross, 14n);
    assert.equal(await h.balanceOf(`escrow:${c.clusterId}`, "USDC"), 0n);
  });

  test("settlement is idempotent per lease and minute, and never releases twice", async (t) => {
    const h = await openBilling(db, t);
    const c = await deployed(h);
    const first = await h.billing.transaction((tx) => h.billing.settleLease(tx, c.lease(0, 30)));
    assert.ok(first.ok && first.transactionId !== null);
    assert.equal(first.ok && fmt(first.released.gross), "0.500000");
    const before = { counts: await h.counts(), balances: await h.balances() };

    const replay = await h.billing.transaction((tx) => h.billing.settleLease(tx, c.lease(0, 30)));
    assert.ok(replay.ok && replay.replayed);
    assert.deepEqual(replay.ok && replay.released, first.ok && first.released);
    const fewer = await h.billing.transaction((tx) => h.billing.settleLease(tx, c.lease(0, 10)));
    assert.ok(fewer.ok && fewer.transactionId === null && fewer.released.gross === 0n);
    assert.deepEqual({ counts: await h.counts(), balances: await h.balances() }, before);

    await assert.rejects(
      h.billing.transaction((tx) => h.billing.settleLease(tx, c.lease(0, 30, "2"))),
      code(ErrorCode.IDEMPOTENCY_CONFLICT),
    );
    const otherSupplier = await h.account(["supplier"]);
    await assert.rejects(
      h.billing.transaction((tx) =>
        h.billing.settleLease(tx, { ...c.lease(0, 31), supplierAccountId: otherSupplier }),
      ),
      code(ErrorCode.CONFLICT),
    );
  });

  test("settlement beyond the escrow is INSUFFICIENT_FUNDS for that lease only", async (t) => {
    const h = await openBilling(db, t);
    const c = await deployed(h, { minutes: 60, nodes: 2 });
    const results = await h.billing.transaction((tx) =>
      h.billing.settleLeases(tx, [c.lease(0, 60), c.lease(1, 61)]),
    );
    assert.equal(results[0]?.ok, true);
    // Lease 1 wants 61 minutes (1.016666) but only 1.000000 is left in escrow.
    assert.deepEqual(results[1], {
      ok: false,
      code: "INSUFFICIENT_FUNDS",
      details: {
        account: `escrow:${c.clusterId}`,
        currency: "USDC",
        required: "1.016666",
        available: "1.000000",
      },
    });
    assert.equal(fmt(await h.balanceOf(`escrow:${c.clusterId}`, "USDC")), "1.000000");
  });

  test("a settlement pass over many leases of many clusters adds up exactly", async (t) => {
    const h = await openBilling(db, t);
    const clusters: Array<Awaited<ReturnType<typeof deployed>>> = [];
    const prices: string[] = [];
    for (let i = 0; i < 5; i++) {
      prices.push(`0.${i + 1}23457`);
      clusters.push(await deployed(h, { nodes: 4, price: prices[i]!, minutes: 600 }));
    }
    const pass = (m: number) =>
      clusters.flatMap((c, k) => [0, 1, 2, 3].map((i) => c.lease(i, m, prices[k])));
    for (const m of [7, 100, 333, 600]) {
      const results = await h.billing.transaction((tx) => h.billing.settleLeases(tx, pass(m)));
      assert.ok(results.every((r) => r.ok));
    }
    for (const c of clusters) {
      const costs = await h.billing.costs(c.clusterId);
      assert.ok(costs !== undefined);
      assert.equal(costs.served, c.quote.rental);
      assert.equal(costs.escrow, 0n);
      assert.equal(costs.paidOut + costs.supplierFees + costs.burned, costs.served);
      // Per-lease fees: at most n − 1 = 3 units below the quote's, in the suppliers' favour.
      assert.ok(c.quote.fees.reservationSupplier - costs.supplierFees <= 3n);
      assert.ok(c.quote.fees.reservationSupplier >= costs.supplierFees);
      assert.equal(
        costs.paidOut,
        c.quote.lines.reduce((s, l) => s + l.supplierPayout, 0n),
      );
    }
  });

  test("refunds return the unserved remainder once, to the payer only", async (t) => {
    const h = await openBilling(db, t);
    const c = await deployed(h);
    await h.billing.transaction((tx) => h.billing.settleLease(tx, c.lease(0, 90)));
    const input = {
      clusterId: c.clusterId,
      consumerAccountId: c.consumer,
      currency: "USDC" as const,
      nowMs: NOW,
    };
    const stranger = await h.account(["consumer"]);
    await assert.rejects(
      h.billing.transaction((tx) =>
        h.billing.refundRemainder(tx, { ...input, consumerAccountId: stranger }),
      ),
      code(ErrorCode.CONFLICT),
    );
    const first = await h.billing.transaction((tx) => h.billing.refundRemainder(tx, input));
    assert.equal(fmt(first.refunded), "98.500000");
    const before = { counts: await h.counts(), balances: await h.balances() };
    const second = await h.billing.transaction((tx) => h.billing.refundRemainder(tx, input));
    assert.deepEqual(second, { ok: true, transactionId: null, refunded: 0n });
    assert.deepEqual({ counts: await h.counts(), balances: await h.balances() }, before);
    // Served time after the refund finds an empty escrow: nobody is paid for unpaid time.
    const late = await h.billing.transaction((tx) => h.billing.settleLease(tx, c.lease(0, 91)));
    assert.equal(late.ok, false);
    // A cluster never charged refunds nothing.
    const none = await h.billing.transaction((tx) =>
      h.billing.refundRemainder(tx, { ...input, clusterId: newId(IdPrefix.cluster) }),
    );
    assert.equal(none.refunded, 0n);
  });

  test("a slash moves up to the supplier's unpaid earnings to the consumer, once per lease", async (t) => {
    const h = await openBilling(db, t);
    const c = await deployed(h);
    // 30 minutes at 1.000000/h: the supplier has 0.496250 unpaid (0.5 less 0.75% fees).
    await h.billing.transaction((tx) => h.billing.settleLease(tx, c.lease(0, 30)));
    const input = {
      clusterId: c.clusterId,
      leaseId: `lease_${c.clusterId}_0`,
      nodeId: "node_0",
      supplierAccountId: c.supplier,
      consumerAccountId: c.consumer,
      currency: "USDC" as const,
      amount: money("1"),
      reason: "went offline",
      nowMs: NOW,
    };
    const walletBefore = await h.balanceOf(`wallet:${c.consumer}`, "USDC");
    const slash = await h.billing.transaction((tx) => h.billing.slash(tx, input));
    assert.deepEqual(
      [fmt(slash.owed), fmt(slash.taken), fmt(slash.shortfall)],
      ["1.000000", "0.496250", "0.503750"],
    );
    assert.equal(fmt(await h.balanceOf(`earnings:${c.supplier}`, "USDC")), "0.000000");
    assert.equal(
      fmt(await h.balanceOf(`wallet:${c.consumer}`, "USDC")),
      fmt(add(walletBefore, money("0.49625"))),
    );
    const again = await h.billing.transaction((tx) => h.billing.slash(tx, input));
    assert.equal(again.transactionId, slash.transactionId, "a second slash of the lease replays");
    assert.equal(fmt(await h.balanceOf(`earnings:${c.supplier}`, "USDC")), "0.000000");
    await assert.rejects(
      h.billing.transaction((tx) => h.billing.slash(tx, { ...input, amount: money("2") })),
      code(ErrorCode.IDEMPOTENCY_CONFLICT),
    );
    const costs = await h.billing.costs(c.clusterId);
    assert.equal(costs && fmt(costs.slashCompensation), "0.496250");
    // Nothing to take: no transaction at all.
    const broke = await h.billing.transaction((tx) =>
      h.billing.slash(tx, { ...input, leaseId: `${input.leaseId}-b` }),
    );
    assert.deepEqual([broke.transactionId, fmt(broke.taken)], [null, "0.000000"]);
  });
});
