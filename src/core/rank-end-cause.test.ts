import assert from "node:assert/strict";
import { test } from "node:test";
import { RANK_END_NAMES, RANK_ENDS, exitEnd, rankEndCause } from "./rank-end-cause.ts";

test("every end has one cause, and only a supplier's cause slashes or costs reputation", () => {
  const expected = {
    finished: "consumer",
    "exit-nonzero": "consumer",
    "image-missing": "consumer",
    "invalid-job": "consumer",
    "limit-exceeded": "consumer",
    "cluster-ended": "consumer",
    "node-offline": "supplier",
    "node-revoked": "supplier",
    "start-failed": "supplier",
    "never-accepted": "supplier",
    drained: "supplier",
    "link-lost": "network",
    "coordinator-outage": "network",
  } as const;
  assert.deepEqual(RANK_END_NAMES.toSorted(), Object.keys(expected).toSorted());
  for (const end of RANK_END_NAMES) {
    assert.equal(rankEndCause(end), expected[end], end);
    const { cause, slash, reputation } = RANK_ENDS[end];
    if (slash || reputation) assert.equal(cause, "supplier", end);
  }
  assert.deepEqual(
    RANK_END_NAMES.filter((end) => RANK_ENDS[end].slash),
    ["node-offline", "node-revoked", "start-failed"],
  );
});

test("a worker's exit report maps to its end", () => {
  const base = { exitCode: null, error: "could not start" };
  assert.equal(exitEnd({ exitCode: 0, error: null }), "finished");
  assert.equal(exitEnd({ exitCode: 2, error: null }), "exit-nonzero");
  assert.equal(exitEnd({ exitCode: null, error: null }), "exit-nonzero", "killed by a signal");
  assert.equal(exitEnd({ exitCode: 137, error: null, limitExceeded: true }), "limit-exceeded");
  assert.equal(exitEnd({ ...base, startFailure: "image-missing" }), "image-missing");
  assert.equal(exitEnd({ ...base, startFailure: "invalid-job" }), "invalid-job");
  assert.equal(exitEnd({ ...base, startFailure: "start-failed" }), "start-failed");
  assert.equal(exitEnd(base), "start-failed", "an unclassed start failure is the node's");
});
