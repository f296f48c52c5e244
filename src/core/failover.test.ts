import assert from "node:assert/strict";
import { describe, it } from "node:test";
import fc from "fast-check";
import { units } from "./money.ts";
import {
  leaseServedMinutes,
  restartScope,
  slashAmount,
  standbyPrice,
  successorPrice,
} from "./failover.ts";

const MIN = 60_000;

describe("failover rules", () => {
  it("reruns one rank for independent kinds and restarts collectives", () => {
    assert.equal(restartScope("batch", 0), "rank");
    assert.equal(restartScope("batch", 3), "rank");
    assert.equal(restartScope("container", 1), "rank");
    assert.equal(restartScope("torch", 2), "all");
    assert.equal(restartScope("ray", 1), "all");
    assert.equal(restartScope("dask", 1), "rank");
    assert.equal(restartScope("dask", 0), "all");
  });

  it("slashes one hour of the lease's rate and prices standbys at a share, rounded down", () => {
    assert.equal(slashAmount(units(1_000_000n)), 1_000_000n);
    assert.equal(slashAmount(units(999_999n)), 999_999n);
    assert.equal(standbyPrice(units(1_000_000n), 10), 100_000n);
    assert.equal(standbyPrice(units(333_333n), 10), 33_333n);
    assert.equal(successorPrice(units(900_000n), units(1_000_000n)), 900_000n);
    assert.equal(successorPrice(units(1_200_000n), units(1_000_000n)), 1_000_000n);
  });

  it("bills a lease from the later start to the earliest end, whole minutes only", () => {
    const base = { clusterStartedAtMs: 0, clusterEndsAtMs: 60 * MIN, billedUntilMs: null };
    assert.equal(
      leaseServedMinutes({ ...base, leaseStartedAtMs: -5 * MIN, nowMs: 10.9 * MIN }),
      10,
    );
    assert.equal(leaseServedMinutes({ ...base, leaseStartedAtMs: 7 * MIN, nowMs: 10 * MIN }), 3);
    assert.equal(
      leaseServedMinutes({
        ...base,
        leaseStartedAtMs: 0,
        billedUntilMs: 4.5 * MIN,
        nowMs: 30 * MIN,
      }),
      4,
    );
    assert.equal(leaseServedMinutes({ ...base, leaseStartedAtMs: 0, nowMs: 90 * MIN }), 60);
    assert.equal(
      leaseServedMinutes({ ...base, clusterStartedAtMs: null, leaseStartedAtMs: 0, nowMs: MIN }),
      0,
    );
    assert.equal(leaseServedMinutes({ ...base, leaseStartedAtMs: null, nowMs: 5 * MIN }), 0);
  });

  it("never bills a rank's successive leases for more than its paid minutes", () => {
    // A rank moves at random instants from node to node; the leases' minutes never sum past the
    // paid time, and lose less than a minute per handover.
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 600 }),
        fc.array(fc.integer({ min: 0, max: 36_000_000 }), { maxLength: 6 }),
        fc.integer({ min: 0, max: 40_000_000 }),
        (paidMinutes, cuts, nowMs) => {
          const endsAt = paidMinutes * MIN;
          const bounds = [0, ...cuts.filter((c) => c < nowMs).sort((a, b) => a - b)];
          let total = 0;
          for (const [i, start] of bounds.entries()) {
            total += leaseServedMinutes({
              clusterStartedAtMs: 0,
              clusterEndsAtMs: endsAt,
              leaseStartedAtMs: start,
              billedUntilMs: bounds[i + 1] ?? null,
              nowMs,
            });
          }
          const servable = Math.floor(Math.min(nowMs, endsAt) / MIN);
          return total <= servable && total >= servable - bounds.length;
        },
      ),
    );
  });
});
