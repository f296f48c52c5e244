import assert from "node:assert/strict";
import { describe, it } from "node:test";
import fc from "fast-check";
import {
  DEFAULT_FEE_SCHEDULE,
  NO_SETTLEMENT,
  quote,
  quoteExtension,
  rentalFor,
  settlementDelta,
  settlementTarget,
  type FeeSchedule,
  type SettlementFigures,
} from "./fees.ts";
import { TandemError } from "./errors.ts";
import {
  CURRENCIES,
  MAX_AMOUNT_UNITS,
  MAX_PRICE_PER_HOUR_UNITS,
  MAX_UNITS,
  add,
  formatMoney,
  money,
  units,
  type Money,
} from "./money.ts";

const price = (max = 50_000_000_000n) => fc.bigInt({ min: 0n, max }).map((n) => units(n));
const currency = fc.constantFrom(...CURRENCIES);
const schedule: fc.Arbitrary<FeeSchedule> = fc.record({
  reservationBps: fc.integer({ min: 0, max: 1000 }),
  paymentBps: fc.integer({ min: 0, max: 1000 }),
  burnBps: fc.integer({ min: 0, max: 1000 }),
  paymentFeeExempt: fc.subarray([...CURRENCIES]),
});

describe("quote", () => {
  it("refuses a total above MAX_AMOUNT_UNITS with INVALID_AMOUNT, before any arithmetic overflows", () => {
    const refusedTotal = (e: unknown) =>
      e instanceof TandemError &&
      e.code === "INVALID_AMOUNT" &&
      e.details?.["problem"] === "TOO_LARGE" &&
      e.details["field"] === "total";
    const nodes = (n: number, pricePerHour: Money) =>
      Array.from({ length: n }, (_, i) => ({ nodeId: `n${i}`, pricePerHour }));
    // The largest deploy at the largest price fits; a price × duration × nodes past it does not.
    const largest = quote({
      currency: "USDC",
      durationMinutes: 720 * 60,
      nodes: nodes(256, units(MAX_PRICE_PER_HOUR_UNITS)),
    });
    assert.equal(formatMoney(largest.consumerTotal), "188467200.000000");
    assert.throws(
      () => quote({ currency: "TDM", durationMinutes: 60, nodes: nodes(2, units(MAX_UNITS)) }),
      refusedTotal,
    );
    assert.throws(
      () =>
        quote({ currency: "USDC", durationMinutes: 60, nodes: nodes(1, units(MAX_AMOUNT_UNITS)) }),
      refusedTotal,
      "the rental is at the bound, the fees take it past",
    );
    const extension = (hours: number) =>
      quoteExtension({
        currency: "USDC",
        paidMinutes: 10 * 60,
        durationMinutes: hours * 60,
        nodes: nodes(1, money("1000000")),
      });
    assert.equal(formatMoney(extension(900).consumerTotal), "920250000.000000");
    assert.throws(() => extension(1000), refusedTotal);
  });

  it("matches DESIGN §6's worked example to the unit", () => {
    const q = quote({
      currency: "USDC",
      durationMinutes: 100 * 60,
      nodes: [{ nodeId: "node_a", pricePerHour: money("1.000000") }],
    });
    assert.equal(formatMoney(q.rental), "100.000000");
    assert.equal(formatMoney(q.consumerTotal), "102.250000");
    assert.equal(formatMoney(q.supplierPayout), "99.250000");
    assert.equal(formatMoney(q.treasury), "2.500000");
    assert.equal(formatMoney(q.fees.burn), "0.500000");
    assert.equal(formatMoney(q.fees.reservationConsumer), "0.250000");
    assert.equal(formatMoney(q.fees.reservationSupplier), "0.250000");
    assert.equal(formatMoney(q.fees.payment), "2.000000");
    assert.deepEqual(
      q.lines.map((l) => [l.nodeId, formatMoney(l.rental), formatMoney(l.supplierPayout)]),
      [["node_a", "100.000000", "99.250000"]],
    );
  });

  it("charges no payment fee in TDM", () => {
    const q = quote({
      currency: "TDM",
      durationMinutes: 6000,
      nodes: [{ nodeId: "n", pricePerHour: money("1") }],
    });
    assert.equal(q.fees.payment, 0n);
    assert.equal(formatMoney(q.consumerTotal), "100.250000");
  });

  it("prices partial hours per minute, rounded down per node", () => {
    const q = quote({
      currency: "USD",
      durationMinutes: 90,
      nodes: [
        { nodeId: "a", pricePerHour: money("1") },
        { nodeId: "b", pricePerHour: units(7n) },
      ],
    });
    // a: 1.5; b: ⌊7 × 90 / 60⌋ = 10 units.
    assert.equal(q.rental, money("1.500010"));
  });

  it("conserves money and rounds every fee down, for any nodes, prices, minutes and rates", () => {
    fc.assert(
      fc.property(
        currency,
        fc.integer({ min: 1, max: 60 * 24 * 400 }),
        fc.array(price(MAX_PRICE_PER_HOUR_UNITS), { minLength: 1, maxLength: 16 }),
        schedule,
        (cur, minutes, prices, s) => {
          const q = quote({
            currency: cur,
            durationMinutes: minutes,
            nodes: prices.map((p, i) => ({ nodeId: `n${i}`, pricePerHour: p })),
            schedule: s,
          });
          assert.equal(q.consumerTotal, add(add(q.supplierPayout, q.treasury), q.fees.burn));
          let r = 0n;
          for (const p of prices) r += (p * BigInt(minutes)) / 60n;
          assert.equal(q.rental, r);
          assert.equal(q.fees.reservationConsumer, (r * BigInt(s.reservationBps)) / 10_000n);
          assert.equal(q.fees.reservationSupplier, q.fees.reservationConsumer);
          assert.equal(
            q.fees.payment,
            s.paymentFeeExempt.includes(cur) ? 0n : (r * BigInt(s.paymentBps)) / 10_000n,
          );
          assert.equal(q.fees.burn, (r * BigInt(s.burnBps)) / 10_000n);
          // Per-lease settlement figures: exact for one node, at most n − 1 units kinder for n.
          const lineFees = q.lines.reduce((a, l) => a + l.supplierFee, 0n);
          const lineBurn = q.lines.reduce((a, l) => a + l.burn, 0n);
          const lineNet = q.lines.reduce((a, l) => a + l.supplierPayout, 0n);
          const slack = BigInt(prices.length - 1);
          assert.ok(lineFees <= q.fees.reservationSupplier);
          assert.ok(q.fees.reservationSupplier - lineFees <= slack);
          assert.ok(lineBurn <= q.fees.burn && q.fees.burn - lineBurn <= slack);
          assert.equal(lineNet + lineFees + lineBurn, q.rental);
        },
      ),
    );
  });

  it("an extension's escrow is exactly what settlement at the new end releases", () => {
    fc.assert(
      fc.property(
        fc.array(fc.integer({ min: 1, max: 10_000 }), { minLength: 1, maxLength: 5 }),
        price(),
        schedule,
        (spans, p, s) => {
          const node = [{ nodeId: "n", pricePerHour: p }];
          let paid = 0;
          let escrowed = 0n;
          for (const minutes of spans) {
            const q =
              paid === 0
                ? quote({ currency: "USDC", durationMinutes: minutes, nodes: node, schedule: s })
                : quoteExtension({
                    currency: "USDC",
                    durationMinutes: minutes,
                    paidMinutes: paid,
                    nodes: node,
                    schedule: s,
                  });
            escrowed += q.rental;
            paid += minutes;
          }
          assert.equal(escrowed, settlementTarget(p, paid, s).gross);
        },
      ),
    );
  });

  it("refuses empty node lists and bad durations", () => {
    const nodes = [{ nodeId: "n", pricePerHour: money("1") }];
    assert.throws(() => quote({ currency: "USDC", durationMinutes: 60, nodes: [] }));
    assert.throws(() => quote({ currency: "USDC", durationMinutes: 0, nodes }));
    assert.throws(() => quote({ currency: "USDC", durationMinutes: 1.5, nodes }));
    assert.throws(() => rentalFor(money("1"), -1));
  });
});

describe("per-minute settlement", () => {
  const release = (released: SettlementFigures, delta: SettlementFigures): SettlementFigures => ({
    gross: add(released.gross, delta.gross),
    supplierFee: add(released.supplierFee, delta.supplierFee),
    burn: add(released.burn, delta.burn),
    net: add(released.net, delta.net),
  });

  it("any sequence of settlements adds up to the one-shot figures, every delta balanced", () => {
    fc.assert(
      fc.property(
        price(),
        fc.array(fc.integer({ min: 0, max: 6000 }), { minLength: 1, maxLength: 30 }),
        (p, minutes) => {
          let released = NO_SETTLEMENT;
          let high = 0;
          for (const m of minutes) {
            const delta = settlementDelta(settlementTarget(p, m), released);
            for (const part of [delta.gross, delta.supplierFee, delta.burn, delta.net])
              assert.ok(part >= 0n);
            assert.equal(delta.gross, delta.net + delta.supplierFee + delta.burn);
            released = release(released, delta);
            high = Math.max(high, m);
          }
          assert.deepEqual(released, settlementTarget(p, high));
        },
      ),
    );
  });

  it("settling every minute of 100 h at 1 USDC/h pays 99.250000", () => {
    let released = NO_SETTLEMENT;
    const p: Money = money("1");
    for (let m = 1; m <= 6000; m++)
      released = release(released, settlementDelta(settlementTarget(p, m), released));
    assert.equal(formatMoney(released.net), "99.250000");
    assert.equal(formatMoney(released.supplierFee), "0.250000");
    assert.equal(formatMoney(released.burn), "0.500000");
  });

  it("a rate change mid-lease never takes back and always balances", () => {
    fc.assert(
      fc.property(price(), schedule, schedule, fc.nat(3000), fc.nat(3000), (p, s1, s2, m1, m2) => {
        const first = settlementTarget(p, m1, s1);
        const delta = settlementDelta(settlementTarget(p, m1 + m2, s2), first);
        for (const part of [delta.gross, delta.supplierFee, delta.burn, delta.net])
          assert.ok(part >= 0n);
        assert.equal(delta.gross, delta.net + delta.supplierFee + delta.burn);
      }),
    );
  });

  it("uses the default schedule of DESIGN §6", () => {
    assert.deepEqual(DEFAULT_FEE_SCHEDULE, {
      reservationBps: 25,
      paymentBps: 200,
      burnBps: 50,
      paymentFeeExempt: ["TDM"],
    });
  });
});
