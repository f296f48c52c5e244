/**
 * The TDM emission schedule (DESIGN.md §6): the community pool of 300,000,000 TDM is minted hourly
 * over 20 years of 8,760 hours from the network's genesis time. Year 1 emits 40,000,000 TDM (8 % of
 * genesis); each later year a fixed fraction less, chosen so that the 20 years sum to the pool
 * (r = 0.876137…: 12.386 % less a year; the paper says "approximately 12 %"). Exact to the unit:
 *
 * 1. The ratio r between two years is a fraction R / 10^24, the largest one for which the real
 *    geometric sum Y1 · (1 + r + … + r^19) does not exceed the pool (exact bigint comparison,
 *    found by bisection). 24 decimals put the real sum within 10^-8 units of the pool.
 * 2. Years 1..19 are ⌊Y1 · r^k⌋, each rounded down; year 20 is the pool minus those 19 years, so
 *    the years sum to the pool exactly. Year 20 is thus its geometric amount plus what the 20
 *    roundings left over: fewer than 20 units more.
 * 3. Within a year, every hour emits ⌊year / 8,760⌋ and the year's last hour also takes the
 *    remainder (< 8,760 units), so each year's hours sum to its total exactly.
 *
 * Hours are counted from genesis, 0-based: hour h runs from genesis + h hours to genesis + h + 1.
 * Before genesis and from hour 175,200 on, nothing is emitted. Pure: no I/O, no clock.
 */
import { ErrorCode, TandemError } from "./errors.ts";
import { money, units, ZERO, type Money } from "./money.ts";

/** TDM's fixed maximum supply: genesis + the community pool. */
export const MAX_SUPPLY = money("800000000");
/** TDM that exists from genesis (one genesis account; vesting is out of scope). */
export const GENESIS_SUPPLY = money("500000000");
/** TDM minted only by emission, over the schedule's years. */
export const COMMUNITY_POOL = money("300000000");
/** Year 1's emission: 8 % of genesis. */
export const FIRST_YEAR_EMISSION = money("40000000");
export const EMISSION_YEARS = 20;
export const HOURS_PER_YEAR = 8760;
export const MS_PER_HOUR = 3_600_000;

/** Decimal digits of the ratio between two years' totals. */
export const RATIO_DECIMALS = 24;
const RATIO_SCALE = 10n ** BigInt(RATIO_DECIMALS);

/** What a schedule is made from (the defaults: {@link DEFAULT_EMISSION_PARAMS}). */
export interface EmissionParams {
  /** Year 1's total, TDM units. */
  readonly firstYear: Money;
  /** What all years sum to, TDM units; between `firstYear` and `years × firstYear`. */
  readonly pool: Money;
  readonly years: number;
  readonly hoursPerYear: number;
}

export const DEFAULT_EMISSION_PARAMS: EmissionParams = {
  firstYear: FIRST_YEAR_EMISSION,
  pool: COMMUNITY_POOL,
  years: EMISSION_YEARS,
  hoursPerYear: HOURS_PER_YEAR,
};

/** A schedule, computed once from its parameters by {@link emissionSchedule}. */
export interface EmissionSchedule {
  readonly params: EmissionParams;
  /** The ratio between two consecutive years' totals: `ratio / 10^RATIO_DECIMALS`, ≤ 1. */
  readonly ratio: bigint;
  /** Each year's total, year 1 first; they sum to `params.pool`. */
  readonly years: readonly Money[];
  /** Each year's hourly amount (its last hour takes the remainder on top). */
  readonly perHour: readonly Money[];
  /** `before[y]`: the total of the years before year index y (`before[years] = pool`). */
  readonly before: readonly Money[];
  /** Hours from genesis to the end of emission: `years × hoursPerYear`. */
  readonly hours: number;
}

/** Builds the schedule of `params`; refuses parameters no declining geometric series can meet. */
export function emissionSchedule(params: EmissionParams): EmissionSchedule {
  const { firstYear, pool, years, hoursPerYear } = params;
  if (!isCount(years) || !isCount(hoursPerYear) || firstYear <= 0n) {
    throw invalid("years and hours per year must be whole numbers ≥ 1, year 1's total > 0");
  }
  if (pool < firstYear || pool > firstYear * BigInt(years)) {
    throw invalid("the pool must lie between year 1's total and years × year 1's total");
  }
  const ratio = solveRatio(firstYear, pool, years);
  const totals: Money[] = [];
  let power = 1n; // R^k
  let scale = 1n; // 10^(24k)
  let emitted = 0n;
  for (let k = 0; k < years - 1; k++) {
    const total = (firstYear * power) / scale;
    totals.push(units(total));
    emitted += total;
    power *= ratio;
    scale *= RATIO_SCALE;
  }
  totals.push(units(pool - emitted));
  const before: Money[] = [ZERO];
  for (const total of totals) before.push(units(before[before.length - 1]! + total));
  return {
    params,
    ratio,
    years: totals,
    perHour: totals.map((total) => units(total / BigInt(hoursPerYear))),
    before,
    hours: years * hoursPerYear,
  };
}

/**
 * The largest R ≤ 10^24 with firstYear · Σ_{k<years} (R / 10^24)^k ≤ pool, compared exactly:
 * firstYear · Σ R^k · 10^(24·(years−1−k)) ≤ pool · 10^(24·(years−1)). The sum grows with R, and
 * R = 0 always qualifies (pool ≥ firstYear), so bisection finds it in ~80 steps.
 */
function solveRatio(firstYear: Money, pool: Money, years: number): bigint {
  const limit = pool * RATIO_SCALE ** BigInt(years - 1);
  const fits = (r: bigint) => {
    let sum = 0n;
    for (let k = 0; k < years; k++) sum += r ** BigInt(k) * RATIO_SCALE ** BigInt(years - 1 - k);
    return firstYear * sum <= limit;
  };
  let lo = 0n;
  let hi = RATIO_SCALE;
  if (fits(hi)) return hi;
  while (hi - lo > 1n) {
    const mid = (lo + hi) / 2n;
    if (fits(mid)) lo = mid;
    else hi = mid;
  }
  return lo;
}

/** The network's schedule: 40,000,000 TDM in year 1, 300,000,000 TDM over 20 years. */
export const DEFAULT_EMISSION_SCHEDULE: EmissionSchedule =
  emissionSchedule(DEFAULT_EMISSION_PARAMS);

/** TDM emitted in hour `hour` (0-based since genesis); 0 before genesis and after the last year. */
export function hourlyEmission(
  hour: number,
  schedule: EmissionSchedule = DEFAULT_EMISSION_SCHEDULE,
): Money {
  checkHour(hour);
  if (hour < 0 || hour >= schedule.hours) return ZERO;
  const { hoursPerYear } = schedule.params;
  const year = Math.floor(hour / hoursPerYear);
  const perHour = schedule.perHour[year]!;
  if (hour % hoursPerYear !== hoursPerYear - 1) return perHour;
  return units(schedule.years[year]! - perHour * BigInt(hoursPerYear - 1));
}

/**
 * TDM emitted before hour `hour` begins: the sum of hours 0 … hour − 1 (0 at genesis and before,
 * the whole pool from the end of the last year on).
 */
export function cumulativeEmission(
  hour: number,
  schedule: EmissionSchedule = DEFAULT_EMISSION_SCHEDULE,
): Money {
  checkHour(hour);
  if (hour <= 0) return ZERO;
  if (hour >= schedule.hours) return schedule.params.pool;
  const { hoursPerYear } = schedule.params;
  const year = Math.floor(hour / hoursPerYear);
  // Fewer than hoursPerYear hours of this year are done, so its last hour is not among them.
  const done = BigInt(hour % hoursPerYear);
  return units(schedule.before[year]! + schedule.perHour[year]! * done);
}

/** The emission hour that `nowMs` falls in (0-based; negative before genesis). */
export function emissionHourAt(nowMs: number, genesisAtMs: number): number {
  if (!Number.isSafeInteger(nowMs) || !Number.isSafeInteger(genesisAtMs)) {
    throw invalid(`times must be whole milliseconds, got ${nowMs} and ${genesisAtMs}`);
  }
  return Math.floor((nowMs - genesisAtMs) / MS_PER_HOUR);
}

function checkHour(hour: number): void {
  if (!Number.isSafeInteger(hour)) throw invalid(`an hour must be a whole number, got ${hour}`);
}

function isCount(n: number): boolean {
  return Number.isSafeInteger(n) && n >= 1;
}

function invalid(message: string): TandemError {
  return new TandemError(ErrorCode.INTERNAL, `emission schedule: ${message}`);
}
