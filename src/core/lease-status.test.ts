import assert from "node:assert/strict";
import { describe, it } from "node:test";
import {
  LeaseStatus,
  isHeld,
  nextLeaseStatus,
  parseLeaseStatus,
  type LeaseTransition,
} from "./lease-status.ts";

const ALL = Object.values(LeaseStatus);

/** Every status a transition may start from, as the header of lease-status.ts draws them. */
function from(transition: LeaseTransition): LeaseStatus[] {
  return ALL.filter((status) => nextLeaseStatus(status, transition) !== undefined);
}

describe("lease status machine", () => {
  it("allows each named transition only from the statuses the machine draws", () => {
    assert.deepEqual(from({ type: "accept" }), ["reserved"]);
    assert.deepEqual(from({ type: "exit", ok: true }), ["reserved", "running"]);
    assert.deepEqual(from({ type: "assign" }), ["staged"]);
    assert.deepEqual(from({ type: "idle" }), ["reserved", "running"]);
    assert.deepEqual(from({ type: "restart" }), ["reserved", "running", "exited", "failed"]);
    assert.deepEqual(from({ type: "leave", as: "lost" }), [
      "reserved",
      "staged",
      "running",
      "exited",
      "failed",
    ]);
    assert.deepEqual(from({ type: "release" }), from({ type: "leave", as: "released" }));
  });

  it("leads where the machine says", () => {
    assert.equal(nextLeaseStatus("reserved", { type: "accept" }), "running");
    assert.equal(nextLeaseStatus("running", { type: "exit", ok: true }), "exited");
    assert.equal(nextLeaseStatus("running", { type: "exit", ok: false }), "failed");
    assert.equal(nextLeaseStatus("staged", { type: "assign" }), "reserved");
    assert.equal(nextLeaseStatus("running", { type: "idle" }), "staged");
    assert.equal(nextLeaseStatus("exited", { type: "restart" }), "reserved");
    assert.equal(nextLeaseStatus("staged", { type: "leave", as: "promoted" }), "promoted");
    // At the cluster's end a rank that ran keeps its outcome; one still serving is released.
    assert.equal(nextLeaseStatus("failed", { type: "release" }), "failed");
    assert.equal(nextLeaseStatus("running", { type: "release" }), "released");
  });

  it("never moves a lease that has left its cluster", () => {
    for (const status of ALL.filter((s) => !isHeld(s)))
      for (const transition of [
        { type: "accept" },
        { type: "exit", ok: true },
        { type: "assign" },
        { type: "idle" },
        { type: "restart" },
        { type: "leave", as: "lost" },
        { type: "release" },
      ] satisfies LeaseTransition[])
        assert.equal(
          nextLeaseStatus(status, transition),
          undefined,
          `${status} ${transition.type}`,
        );
  });

  it("refuses a stored status outside the union", () => {
    assert.equal(parseLeaseStatus("handed-over"), "handed-over");
    assert.throws(() => parseLeaseStatus("gone"), /unknown lease status "gone"/);
  });
});
