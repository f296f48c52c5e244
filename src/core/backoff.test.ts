import assert from "node:assert/strict";
import { it } from "node:test";
import fc from "fast-check";
import { backoffDelayMs } from "./backoff.ts";

it("never waits longer than the cap, and grows until it reaches it", () => {
  fc.assert(
    fc.property(fc.nat(1000), fc.double({ min: 0, max: 0.999999, noNaN: true }), (attempt, r) => {
      const delay = backoffDelayMs(attempt, { baseMs: 250, maxMs: 10_000 }, () => r);
      assert.ok(delay >= 0 && delay <= 10_000);
      assert.ok(delay <= 250 * 2 ** Math.min(attempt, 30));
    }),
  );
  const top = (attempt: number) =>
    backoffDelayMs(attempt, { baseMs: 250, maxMs: 10_000 }, () => 0.999999);
  assert.deepEqual([0, 1, 2, 3, 5, 6, 50].map(top), [249, 499, 999, 1999, 7999, 9999, 9999]);
});
