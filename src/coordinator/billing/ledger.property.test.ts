/**
 * Property tests over the real billing code and database: random sequences of deposit, deploy,
 * extend, settle, node failure, terminate (refund), withdraw, a supplier choosing another payout
 * currency (settlements then convert at the oracle's rate) and replays keep every invariant —
 * each transaction balanced, no guarded balance below zero, Σ balances = deposits − withdrawals −
 * burned per currency — and every balance equals a simple model's.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import fc from "fast-check";
import { openBilling, type BillingHarness } from "../../../test/support/billing.ts";
import { forEachDatabase } from "../../../test/support/coordinator.ts";
import { ErrorCode, TandemError } from "../../core/errors.ts";
import {
  NO_SETTLEMENT,
  settlementDelta,
  settlementTarget,
  type SettlementFigures,
} from "../../core/fees.ts";
import { CURRENCIES, units, type Currency, type Money } from "../../core/money.ts";
import { IdPrefix, newId } from "../../protocol/ids.ts";
import { ledgerAudit } from "./audit.ts";
import { DEFAULT_ORACLE_RATES, convert, exchangeRate, formatRate } from "../../core/exchange.ts";

const USERS = 3;
const user = fc.nat(USERS - 1);
const currency = fc.constantFrom<Currency>(...CURRENCIES);
const amount = fc.bigInt({ min: 1n, max: 400_000_000n });

type Op =
  | { t: "deposit"; user: number; currency: Currency; amount: bigint }
  | { t: "withdraw"; user: number; currency: Currency; amount: bigint; from: "earnings" | "wallet" }
  | {
      t: "deploy";
      user: number;
      currency: Currency;
      minutes: number;
      nodes: Array<{ supplier: number; price: bigint }>;
    }
  | { t: "extend"; cluster: number; minutes: number }
  | { t: "settle"; cluster: number; node: number; minutes: number }
  | { t: "fail"; cluster: number; node: number; minutes: number }
  | { t: "terminate"; cluster: number }
  | { t: "payout"; user: number; currency: Currency | null }
  | { t: "replay"; op: number };

const op: fc.Arbitrary<Op> = fc.oneof(
  fc.record({ t: fc.constant("deposit" as const), user, currency, amount }),
  fc.record({
    t: fc.constant("withdraw" as const),
    user,
    currency,
    amount,
    from: fc.constantFrom("earnings" as const, "wallet" as const),
  }),
  fc.record({
    t: fc.constant("deploy" as const),
    user,
    currency,
    minutes: fc.integer({ min: 1, max: 900 }),
    nodes: fc.array(fc.record({ supplier: user, price: fc.bigInt({ min: 0n, max: 9_000_000n }) }), {
      minLength: 1,
      maxLength: 3,
    }),
  }),
  fc.record({
    t: fc.constant("extend" as const),
    cluster: fc.nat(5),
    minutes: fc.integer({ min: 1, max: 300 }),
  }),
  fc.record({
    t: fc.constant("settle" as const),
    cluster: fc.nat(5),
    node: fc.nat(2),
    minutes: fc.nat(1300),
  }),
  fc.record({
    t: fc.constant("fail" as const),
    cluster: fc.nat(5),
    node: fc.nat(2),
    minutes: fc.nat(1300),
  }),
  fc.record({ t: fc.constant("terminate" as const), cluster: fc.nat(5) }),
  fc.record({
    t: fc.constant("payout" as const),
    user,
    currency: fc.option(currency, { nil: null }),
  }),
  fc.record({ t: fc.constant("replay" as const), op: fc.nat(40) }),
);

interface ClusterModel {
  id: string;
  consumer: string;
  currency: Currency;
  nodes: Array<{ supplier: string; price: Money; released: SettlementFigures; failed: boolean }>;
  paidMinutes: number;
  /** Refunded: the scheduler settles every lease first and never meters or extends it again. */
  ended: boolean;
}

/** What the ledger should hold, computed without the ledger. */
class Model {
  readonly balances = new Map<string, bigint>();
  readonly clusters: ClusterModel[] = [];
  /** Each supplier's chosen payout currency (absent: the consumer's). */
  readonly payout = new Map<string, Currency>();
  get(account: string, c: Currency): bigint {
    return this.balances.get(`${account} ${c}`) ?? 0n;
  }
  move(from: string, to: string, c: Currency, a: bigint): void {
    this.balances.set(`${from} ${c}`, this.get(from, c) - a);
    this.balances.set(`${to} ${c}`, this.get(to, c) + a);
  }
}

async function runSequence(h: BillingHarness, users: string[], ops: readonly Op[]): Promise<void> {
  const model = new Model();
  const { billing, wallet } = h;
  const replays: Array<() => Promise<unknown>> = [];
  const nowMs = Date.UTC(2025, 0, 1);
  let n = 0;
  const key = () => `p-${users[0]}-${++n}`;

  for (const o of ops) {
    switch (o.t) {
      case "deposit": {
        const request = {
          requestedBy: "prop",
          idempotencyKey: key(),
          accountId: users[o.user]!,
          currency: o.currency,
          amount: units(o.amount),
          nowMs,
        };
        await wallet.deposit(request);
        model.move("external:manual", `wallet:${request.accountId}`, o.currency, o.amount);
        replays.push(() => wallet.deposit(request));
        break;
      }
      case "withdraw": {
        const accountId = users[o.user]!;
        const source = `${o.from}:${accountId}`;
        const request = {
          requestedBy: "prop",
          idempotencyKey: key(),
          accountId,
          currency: o.currency,
          amount: units(o.amount),
          from: o.from,
          destination: null,
          nowMs,
        };
        const affordable = model.get(source, o.currency) >= o.amount;
        try {
          await wallet.withdraw(request);
          assert.ok(affordable, "a withdrawal beyond the balance succeeded");
          model.move(source, "external:manual", o.currency, o.amount);
          replays.push(() => wallet.withdraw(request));
        } catch (error) {
          assert.ok(
            error instanceof TandemError && error.code === ErrorCode.INSUFFICIENT_FUNDS,
            String(error),
          );
          assert.ok(!affordable, "an affordable withdrawal was refused");
        }
        break;
      }
      case "deploy": {
        const consumer = users[o.user]!;
        const nodes = o.nodes.map((node, i) => ({
          nodeId: `node_${i}`,
          pricePerHour: units(node.price),
        }));
        const quote = billing.quote({ currency: o.currency, durationMinutes: o.minutes, nodes });
        const input = {
          clusterId: newId(IdPrefix.cluster),
          consumerAccountId: consumer,
          quote,
          idempotencyKey: key(),
          nowMs,
        };
        const result = await billing.transaction((tx) => billing.chargeDeploy(tx, input));
        const affordable = model.get(`wallet:${consumer}`, o.currency) >= quote.consumerTotal;
        assert.equal(result.ok, affordable);
        if (!result.ok || quote.consumerTotal === 0n) break;
        model.move(`wallet:${consumer}`, `escrow:${input.clusterId}`, o.currency, quote.rental);
        model.move(
          `wallet:${consumer}`,
          "treasury",
          o.currency,
          quote.treasury - quote.fees.reservationSupplier,
        );
        model.clusters.push({
          id: input.clusterId,
          consumer,
          currency: o.currency,
          paidMinutes: o.minutes,
          ended: false,
          nodes: o.nodes.map((node) => ({
            supplier: users[node.supplier]!,
            price: units(node.price),
            released: NO_SETTLEMENT,
            failed: false,
          })),
        });
        replays.push(() => billing.transaction((tx) => billing.chargeDeploy(tx, input)));
        break;
      }
      case "extend": {
        const c = model.clusters[o.cluster % Math.max(1, model.clusters.length)];
        if (c === undefined || c.ended) break;
        const quote = billing.quoteExtension({
          currency: c.currency,
          paidMinutes: c.paidMinutes,
          durationMinutes: o.minutes,
          nodes: c.nodes.map((node, i) => ({ nodeId: `node_${i}`, pricePerHour: node.price })),
        });
        const input = {
          clusterId: c.id,
          consumerAccountId: c.consumer,
          quote,
          idempotencyKey: key(),
          nowMs,
        };
        const result = await billing.transaction((tx) => billing.chargeExtension(tx, input));
        assert.equal(
          result.ok,
          model.get(`wallet:${c.consumer}`, c.currency) >= quote.consumerTotal,
        );
        if (!result.ok || quote.consumerTotal === 0n) break;
        model.move(`wallet:${c.consumer}`, `escrow:${c.id}`, c.currency, quote.rental);
        model.move(
          `wallet:${c.consumer}`,
          "treasury",
          c.currency,
          quote.treasury - quote.fees.reservationSupplier,
        );
        c.paidMinutes += o.minutes;
        replays.push(() => billing.transaction((tx) => billing.chargeExtension(tx, input)));
        break;
      }
      case "settle":
      case "fail": {
        const c = model.clusters[o.cluster % Math.max(1, model.clusters.length)];
        const node = c?.nodes[o.node % (c?.nodes.length ?? 1)];
        if (c === undefined || c.ended || node === undefined || node.failed) break;
        const index = c.nodes.indexOf(node);
        // The scheduler never meters past the paid minutes; a failed node stops where it failed.
        const minutes = Math.min(o.minutes, c.paidMinutes);
        const input = {
          clusterId: c.id,
          leaseId: `${c.id}:${index}`,
          supplierAccountId: node.supplier,
          currency: c.currency,
          pricePerHour: node.price,
          servedMinutes: minutes,
          nowMs,
        };
        const result = await billing.transaction((tx) => billing.settleLease(tx, input));
        const delta = settlementDelta(
          settlementTarget(node.price, minutes, billing.schedule),
          node.released,
        );
        assert.ok(result.ok, "settling paid minutes must always be covered by the escrow");
        assert.deepEqual(result.released, result.replayed ? result.released : delta);
        if (!result.replayed) {
          const chosen = model.payout.get(node.supplier) ?? c.currency;
          if (chosen === c.currency) {
            model.move(`escrow:${c.id}`, `earnings:${node.supplier}`, c.currency, delta.net);
            assert.equal(result.payout, null);
          } else {
            const rate = exchangeRate(DEFAULT_ORACLE_RATES, c.currency, chosen);
            const paid = convert(delta.net, rate);
            model.move(`escrow:${c.id}`, "treasury", c.currency, delta.net);
            model.move("treasury", `earnings:${node.supplier}`, chosen, paid);
            assert.deepEqual(
              delta.net === 0n ? null : result.payout,
              delta.net === 0n ? null : { currency: chosen, amount: paid, rate: formatRate(rate) },
            );
          }
          model.move(`escrow:${c.id}`, "treasury", c.currency, delta.supplierFee);
          model.move(`escrow:${c.id}`, "burn", c.currency, delta.burn);
          node.released = result.total;
        }
        if (o.t === "fail") node.failed = true;
        replays.push(() => billing.transaction((tx) => billing.settleLease(tx, input)));
        break;
      }
      case "terminate": {
        const c = model.clusters[o.cluster % Math.max(1, model.clusters.length)];
        if (c === undefined) break;
        const result = await billing.transaction((tx) =>
          billing.refundRemainder(tx, {
            clusterId: c.id,
            consumerAccountId: c.consumer,
            currency: c.currency,
            nowMs,
          }),
        );
        assert.equal(result.refunded, model.get(`escrow:${c.id}`, c.currency));
        model.move(`escrow:${c.id}`, `wallet:${c.consumer}`, c.currency, result.refunded);
        c.ended = true;
        break;
      }
      case "payout": {
        const supplier = users[o.user]!;
        await billing.setPayoutCurrency(supplier, o.currency, nowMs);
        if (o.currency === null) model.payout.delete(supplier);
        else model.payout.set(supplier, o.currency);
        break;
      }
      case "replay": {
        const replay = replays[o.op % Math.max(1, replays.length)];
        if (replay === undefined) break;
        const before = { counts: await h.counts(), balances: await h.balances() };
        await replay();
        assert.deepEqual(
          { counts: await h.counts(), balances: await h.balances() },
          before,
          "a replay changed the ledger",
        );
        break;
      }
    }
  }

  for (const [entry, expected] of model.balances) {
    const [account, c] = entry.split(" ") as [string, Currency];
    if (account === "treasury" || account === "burn" || account.startsWith("external:")) continue;
    assert.equal(await h.balanceOf(account, c), expected, entry);
  }
  const audit = await ledgerAudit(h.store.db);
  assert.equal(audit.unbalancedTransactions, 0);
  assert.equal(audit.negativeBalances, 0);
  assert.equal(audit.cacheMismatches, 0);
  assert.ok(
    audit.currencies.every((c) => c.conserved),
    JSON.stringify(audit.currencies),
  );
}

forEachDatabase("ledger properties", (db) => {
  test("random money operations keep every invariant and match the model", async (t) => {
    const h = await openBilling(db, t);
    await fc.assert(
      fc.asyncProperty(fc.array(op, { minLength: 1, maxLength: 40 }), async (ops) => {
        const users: string[] = [];
        for (let i = 0; i < USERS; i++) users.push(await h.account());
        await runSequence(h, users, ops);
      }),
      { numRuns: db.kind === "postgres" ? 30 : 80 },
    );
  });

  test("suppliers paid in other currencies: every settlement converts exactly as the model does", async (t) => {
    const h = await openBilling(db, t);
    const funded: Op[] = Array.from({ length: USERS }, (_, u) =>
      CURRENCIES.map((c): Op => ({ t: "deposit", user: u, currency: c, amount: 10n ** 12n })),
    ).flat();
    const choices = fc.array(fc.option(currency, { nil: null }), {
      minLength: USERS,
      maxLength: USERS,
    });
    await fc.assert(
      fc.asyncProperty(
        choices,
        fc.array(op, { minLength: 5, maxLength: 40, size: "max" }),
        async (payouts, ops) => {
          const users: string[] = [];
          for (let i = 0; i < USERS; i++) users.push(await h.account());
          const chosen = payouts.map((c, u): Op => ({ t: "payout", user: u, currency: c }));
          await runSequence(h, users, [...funded, ...chosen, ...ops]);
        },
      ),
      { numRuns: db.kind === "postgres" ? 10 : 30 },
    );
  });
});
