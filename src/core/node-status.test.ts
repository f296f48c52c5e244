import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { ErrorCode, TandemError } from "./errors.ts";
import { NODE_STATUSES, nextNodeStatus } from "./node-status.ts";

describe("node status", () => {
  it("an idle node that fails a spot check goes back to unverified, and only an idle one", () => {
    assert.equal(nextNodeStatus("available", { type: "unverify" }), "unverified");
    for (const from of NODE_STATUSES.filter((s) => s !== "available"))
      assert.throws(
        () => nextNodeStatus(from, { type: "unverify" }),
        (e: unknown) => e instanceof TandemError && e.code === ErrorCode.INVALID_TRANSITION,
        from,
      );
    // Unverified again, it is placed only after it proves itself anew.
    assert.equal(nextNodeStatus("unverified", { type: "verify" }), "available");
    assert.throws(() => nextNodeStatus("unverified", { type: "lease" }));
  });
});
