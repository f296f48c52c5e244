import assert from "node:assert/strict";
import { describe, it } from "node:test";
import fc from "fast-check";
import {
  COMMUNITY_POOL,
  DEFAULT_EMISSION_SCHEDULE as schedule,
  EMISSION_YEARS,
  GENESIS_SUPPLY,
  HOURS_PER_YEAR,
  MAX_SUPPLY,
  MS_PER_HOUR,
  RATIO_DECIMALS,
  cumulativeEmission,
  emissionHourAt,
  emissionSchedule,
  hourlyEmission,
  type EmissionSchedule,
} from "./emission.ts";
import { TandemError } from "./errors.ts";
import { formatMoney, money, units } from "./money.ts";

const LAST_HOUR = EMISSION_YEARS * HOURS_PER_YEAR - 1; // 175,199
const total = (amounts: Iterable<bigint>) => [...amounts].reduce((a, b) => a + b, 0n);
const hoursOfYear = (year: number, s: EmissionSchedule = schedule) => {
  const hours: bigint[] = [];
  const first = year * s.params.hoursPerYear;
  for (let h = first; h < first + s.params.hoursPerYear; h++) hours.push(hourlyEmission(h, s));
  return hours;
};

describe("the emission schedule, to the unit", () => {
  it("supply constants: 800,000,000 max = 500,000,000 genesis + 300,000,000 pool", () => {
    assert.equal(formatMoney(MAX_SUPPLY), "800000000.000000");
    assert.equal(formatMoney(GENESIS_SUPPLY), "500000000.000000");
    assert.equal(formatMoney(COMMUNITY_POOL), "300000000.000000");
    assert.equal(GENESIS_SUPPLY + COMMUNITY_POOL, MAX_SUPPLY);
  });

  it("year 1 is exactly 40,000,000 TDM and the 20 years sum to exactly 300,000,000", () => {
    assert.equal(schedule.years.length, 20);
    assert.equal(formatMoney(schedule.years[0]!), "40000000.000000");
    assert.equal(formatMoney(units(total(schedule.years))), "300000000.000000");
    assert.equal(schedule.before[20], COMMUNITY_POOL);
  });

  it("each year is a fixed fraction (≈ 12.39 %) less than the one before, rounded down", () => {
    const ratio = Number(schedule.ratio) / 10 ** RATIO_DECIMALS;
    assert.ok(Math.abs(1 - ratio - 0.1239) < 0.00005, `decline ${(1 - ratio) * 100} %`);
    const scale = 10n ** BigInt(RATIO_DECIMALS);
    for (let k = 1; k < 20; k++) {
      assert.ok(schedule.years[k]! < schedule.years[k - 1]!, `year ${k + 1} below year ${k}`);
      const geometric = (schedule.years[0]! * schedule.ratio ** BigInt(k)) / scale ** BigInt(k);
      // Years 2..19 are the geometric amount rounded down; year 20 also takes what the 20
      // roundings left over, fewer than 20 units.
      const extra = schedule.years[k]! - geometric;
      if (k < 19) assert.equal(extra, 0n, `year ${k + 1}`);
      else assert.ok(extra >= 0n && extra < 20n, `year 20 takes ${extra} units more`);
    }
    // The ratio is the largest with 24 decimals whose real sum stays within the pool: one unit
    // of 10^-24 more would put 20 years' real sum above it.
    const realSum = (r: bigint) => {
      let sum = 0n;
      for (let k = 0; k < 20; k++) sum += r ** BigInt(k) * scale ** BigInt(19 - k);
      return schedule.years[0]! * sum;
    };
    const limit = COMMUNITY_POOL * scale ** 19n;
    assert.ok(realSum(schedule.ratio) <= limit);
    assert.ok(realSum(schedule.ratio + 1n) > limit);
  });

  it("every year's 8,760 hours sum exactly to its total; the remainder is the last hour's", () => {
    for (let year = 0; year < 20; year++) {
      const hours = hoursOfYear(year);
      assert.equal(total(hours), schedule.years[year], `year ${year + 1}`);
      const base = schedule.years[year]! / 8760n;
      assert.ok(hours.slice(0, -1).every((h) => h === base));
      assert.equal(hours[8759], schedule.years[year]! - base * 8759n);
    }
    assert.equal(formatMoney(hourlyEmission(0)), "4566.210045");
    assert.equal(formatMoney(hourlyEmission(8759)), "4566.215845");
    assert.equal(formatMoney(hourlyEmission(8760)), "4000.627336");
  });

  it("hour 175,200 and later emit 0, as do hours before genesis", () => {
    assert.ok(hourlyEmission(LAST_HOUR) > 0n);
    for (const hour of [175_200, 175_201, 10_000_000, Number.MAX_SAFE_INTEGER, -1, -8760])
      assert.equal(hourlyEmission(hour), 0n, `hour ${hour}`);
    assert.equal(cumulativeEmission(175_200), COMMUNITY_POOL);
    assert.equal(cumulativeEmission(Number.MAX_SAFE_INTEGER), COMMUNITY_POOL);
    assert.equal(cumulativeEmission(0), 0n);
    assert.equal(cumulativeEmission(-5), 0n);
  });

  it("cumulative(h) is the sum of the hourly amounts before h, over all 175,200 hours", () => {
    let sum = 0n;
    for (let hour = 0; hour <= 175_201; hour++) {
      assert.equal(cumulativeEmission(hour), sum, `hour ${hour}`);
      sum += hourlyEmission(hour);
    }
    assert.equal(sum, COMMUNITY_POOL);
  });

  it("property: cumulative(b) − cumulative(a) = Σ hourly over [a, b); never negative, never above the pool", () => {
    const hour = fc.integer({ min: -10_000, max: 180_000 });
    fc.assert(
      fc.property(hour, fc.integer({ min: 0, max: 3000 }), (a, span) => {
        let sum = 0n;
        for (let h = a; h < a + span; h++) {
          const amount = hourlyEmission(h);
          assert.ok(amount >= 0n && amount <= schedule.years[0]!);
          sum += amount;
        }
        const from = cumulativeEmission(a);
        const to = cumulativeEmission(a + span);
        assert.equal(to - from, sum);
        assert.ok(from >= 0n && to <= COMMUNITY_POOL && from <= to);
      }),
      { numRuns: 300 },
    );
  });

  it("property: any schedule's years sum to its pool and its hours to each year", () => {
    const params = fc
      .record({
        firstYear: fc.bigInt({ min: 1n, max: 10n ** 15n }),
        years: fc.integer({ min: 1, max: 30 }),
        hoursPerYear: fc.integer({ min: 1, max: 50 }),
        share: fc.bigInt({ min: 0n, max: 1000n }),
      })
      .map(({ firstYear, years, hoursPerYear, share }) => ({
        firstYear: units(firstYear),
        // Anywhere from year 1 alone (ratio 0) to every year equal (ratio 1).
        pool: units(firstYear + (firstYear * BigInt(years - 1) * share) / 1000n),
        years,
        hoursPerYear,
      }));
    fc.assert(
      fc.property(params, (p) => {
        const s = emissionSchedule(p);
        assert.equal(s.years[0], p.firstYear);
        assert.equal(total(s.years), p.pool);
        for (let year = 0; year < p.years; year++) {
          assert.equal(total(hoursOfYear(year, s)), s.years[year]);
          // The last year may exceed the one before by its rounding remainder (< years units).
          assert.ok(s.years[year]! >= 0n);
          if (year > 0 && year < p.years - 1) assert.ok(s.years[year]! <= s.years[year - 1]!);
        }
        assert.equal(cumulativeEmission(s.hours, s), p.pool);
        assert.equal(hourlyEmission(s.hours, s), 0n);
      }),
      { numRuns: 200 },
    );
  });

  it("refuses parameters no declining series meets, and hours or times that are not whole", () => {
    const internal = (e: unknown) => e instanceof TandemError && e.code === "INTERNAL";
    const base = { firstYear: money("10"), pool: money("100"), years: 20, hoursPerYear: 24 };
    assert.throws(() => emissionSchedule({ ...base, pool: money("9.999999") }), internal);
    assert.throws(() => emissionSchedule({ ...base, pool: money("200.000001") }), internal);
    assert.throws(() => emissionSchedule({ ...base, years: 0 }), internal);
    assert.throws(() => emissionSchedule({ ...base, hoursPerYear: 1.5 }), internal);
    assert.throws(() => emissionSchedule({ ...base, firstYear: money("0") }), internal);
    assert.throws(() => hourlyEmission(1.5), internal);
    assert.throws(() => cumulativeEmission(Number.NaN), internal);
    assert.throws(() => emissionHourAt(Number.POSITIVE_INFINITY, 0), internal);
  });

  it("the hour of a time: whole hours since genesis, negative before it", () => {
    const genesis = Date.UTC(2026, 0, 1);
    assert.equal(emissionHourAt(genesis, genesis), 0);
    assert.equal(emissionHourAt(genesis + MS_PER_HOUR - 1, genesis), 0);
    assert.equal(emissionHourAt(genesis + MS_PER_HOUR, genesis), 1);
    assert.equal(emissionHourAt(genesis - 1, genesis), -1);
    assert.equal(emissionHourAt(genesis + 365 * 24 * MS_PER_HOUR, genesis), 8760);
  });
});
