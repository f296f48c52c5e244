import { describe, it } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";
import { type OnlineInterval, UPTIME_WINDOWS_MS, uptimeRatio, uptimeSummary } from "./uptime.ts";

const HOUR_MS = 3_600_000;
const DAY_MS = UPTIME_WINDOWS_MS["24h"];
const NOW_MS = 1_700_000_000_000;
const day = { nowMs: NOW_MS, windowMs: DAY_MS, registeredAtMs: 0 };

describe("uptimeRatio", () => {
  it("is 0 with no intervals", () => {
    assert.equal(uptimeRatio([], day), 0);
  });

  it("is 1 when online for the whole window", () => {
    assert.equal(uptimeRatio([{ startMs: NOW_MS - DAY_MS, endMs: NOW_MS }], day), 1);
  });

  it("is 0.5 when online for half the window", () => {
    assert.equal(uptimeRatio([{ startMs: NOW_MS - 12 * HOUR_MS, endMs: NOW_MS }], day), 0.5);
  });

  it("clips intervals that extend outside the window", () => {
    const intervals = [
      { startMs: NOW_MS - 3 * DAY_MS, endMs: NOW_MS - DAY_MS + 6 * HOUR_MS },
      { startMs: NOW_MS - 6 * HOUR_MS, endMs: NOW_MS + DAY_MS },
      { startMs: NOW_MS - 5 * DAY_MS, endMs: NOW_MS - 2 * DAY_MS },
    ];
    assert.equal(uptimeRatio(intervals, day), 0.5);
  });

  it("runs an open interval to nowMs", () => {
    assert.equal(uptimeRatio([{ startMs: NOW_MS - 6 * HOUR_MS, endMs: null }], day), 0.25);
    assert.equal(uptimeRatio([{ startMs: NOW_MS - 2 * DAY_MS, endMs: null }], day), 1);
  });

  it("does not double-count overlapping, unsorted intervals", () => {
    const intervals = [
      { startMs: NOW_MS - 6 * HOUR_MS, endMs: null },
      { startMs: NOW_MS - 12 * HOUR_MS, endMs: NOW_MS - 3 * HOUR_MS },
      { startMs: NOW_MS - 10 * HOUR_MS, endMs: NOW_MS - 8 * HOUR_MS },
      { startMs: NOW_MS - 12 * HOUR_MS, endMs: NOW_MS - 12 * HOUR_MS },
    ];
    assert.equal(uptimeRatio(intervals, day), 0.5);
  });

  it("observes only from registration when the node registered mid-window", () => {
    const registeredAtMs = NOW_MS - HOUR_MS;
    const opts = { ...day, registeredAtMs };
    assert.equal(uptimeRatio([{ startMs: registeredAtMs, endMs: null }], opts), 1);
    assert.equal(uptimeRatio([{ startMs: NOW_MS - HOUR_MS / 4, endMs: null }], opts), 0.25);
  });

  it("is 0 when nothing has been observed yet", () => {
    const interval = { startMs: NOW_MS - HOUR_MS, endMs: null };
    assert.equal(uptimeRatio([interval], { ...day, registeredAtMs: NOW_MS }), 0);
    assert.equal(uptimeRatio([interval], { ...day, registeredAtMs: NOW_MS + 1 }), 0);
  });
});

describe("uptimeSummary", () => {
  it("computes every window", () => {
    const registeredAtMs = NOW_MS - 30 * DAY_MS;
    const intervals = [{ startMs: NOW_MS - 12 * HOUR_MS, endMs: null }];
    assert.deepEqual(uptimeSummary(intervals, { nowMs: NOW_MS, registeredAtMs }), {
      "24h": 0.5,
      "7d": 0.5 / 7,
      "30d": 0.5 / 30,
    });
  });
});

describe("uptimeRatio properties", () => {
  /** Interval sets and options on the time scale [0, tMaxMs], with overlaps and open intervals. */
  function scenario(tMaxMs: number) {
    const time = fc.integer({ min: 0, max: tMaxMs });
    const interval: fc.Arbitrary<OnlineInterval> = fc
      .tuple(time, fc.option(fc.integer({ min: 0, max: tMaxMs / 2 }), { freq: 4 }))
      .map(([startMs, lengthMs]) => ({
        startMs,
        endMs: lengthMs === null ? null : startMs + lengthMs,
      }));
    return fc.tuple(
      fc.array(interval, { maxLength: 12 }),
      fc.record({
        nowMs: time,
        windowMs: fc.integer({ min: 1, max: tMaxMs }),
        registeredAtMs: time,
      }),
    );
  }

  /** Counts covered unit cells [t, t + 1) of the observed part, one by one. */
  function bruteForce(
    list: readonly OnlineInterval[],
    o: { nowMs: number; windowMs: number; registeredAtMs: number },
  ): number {
    const fromMs = Math.max(o.nowMs - o.windowMs, o.registeredAtMs);
    if (o.nowMs <= fromMs) return 0;
    let covered = 0;
    for (let t = fromMs; t < o.nowMs; t++) {
      if (list.some((i) => i.startMs <= t && t < (i.endMs ?? o.nowMs))) covered++;
    }
    return covered / (o.nowMs - fromMs);
  }

  it("matches a brute-force count of covered instants", () => {
    fc.assert(
      fc.property(scenario(2000), ([list, o]) => {
        const got = uptimeRatio(list, o);
        const want = bruteForce(list, o);
        assert.ok(Math.abs(got - want) <= 1e-9, `got ${got}, want ${want}`);
      }),
      { numRuns: 500 },
    );
  });

  it("always lies in [0, 1]", () => {
    fc.assert(
      fc.property(scenario(4 * UPTIME_WINDOWS_MS["30d"]), ([list, o]) => {
        const ratio = uptimeRatio(list, o);
        assert.ok(ratio >= 0 && ratio <= 1, `ratio ${ratio}`);
      }),
    );
  });
});
