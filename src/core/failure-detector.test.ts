import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { FailureDetector } from "./failure-detector.ts";

function manualClock(start = 1_000_000) {
  let t = start;
  return { now: () => t, advance: (ms: number) => void (t += ms) };
}

describe("FailureDetector", () => {
  it("declares a node dead after exactly `missedHeartbeats` silent intervals", () => {
    const clock = manualClock();
    const fd = new FailureDetector({ clock, heartbeatIntervalMs: 2000, missedHeartbeats: 3 });
    fd.watch("node_a");
    clock.advance(5999);
    assert.deepEqual(fd.sweep(), []);
    clock.advance(1);
    assert.deepEqual(fd.sweep(), [
      { nodeId: "node_a", lastBeatMs: 1_000_000, unheardSinceRestart: false },
    ]);
    assert.equal(fd.isWatched("node_a"), false);
  });

  it("gives a node restored after a restart its deadline plus the grace, but reports it last seen before", () => {
    const clock = manualClock();
    const fd = new FailureDetector({
      clock,
      heartbeatIntervalMs: 2000,
      missedHeartbeats: 3,
      restartGraceMs: 10_000,
    });
    fd.watch("node_gone", 400_000);
    fd.watch("node_back", 400_000);
    assert.equal(fd.lastHeardMs("node_gone"), 400_000);
    assert.equal(fd.awaitingContact("node_gone"), true);
    clock.advance(3000);
    fd.beat("node_back", undefined);
    assert.equal(fd.lastHeardMs("node_back"), 1_003_000, "a beat replaces the restored time");
    assert.equal(fd.awaitingContact("node_back"), false);
    for (let i = 0; i < 6; i++) {
      clock.advance(2000);
      fd.beat("node_back", undefined);
    }
    clock.advance(999); // 15,999 ms since the restart
    assert.deepEqual(fd.sweep(), [], "not dead before its deadline and grace from the restart");
    clock.advance(1);
    assert.deepEqual(fd.sweep(), [
      { nodeId: "node_gone", lastBeatMs: 400_000, unheardSinceRestart: true },
    ]);
    assert.equal(fd.lastHeardMs("node_gone"), undefined);
    // The node that came back is judged like any other: no grace once it has beaten.
    clock.advance(5000);
    assert.deepEqual(fd.sweep(), [
      { nodeId: "node_back", lastBeatMs: 1_015_000, unheardSinceRestart: false },
    ]);
  });

  it("judges again a node whose verdict could not be recorded, as it was", () => {
    const clock = manualClock();
    const fd = new FailureDetector({
      clock,
      heartbeatIntervalMs: 2000,
      missedHeartbeats: 3,
      restartGraceMs: 10_000,
    });
    fd.watch("node_silent");
    fd.watch("node_restored", 400_000);
    clock.advance(16_000);
    const dead = fd.sweep();
    assert.equal(dead.length, 2);
    for (const d of dead) fd.judgeAgain(d);
    assert.equal(fd.awaitingContact("node_restored"), true);
    clock.advance(1);
    assert.deepEqual(fd.sweep(), dead);
  });

  it("keeps a beating node alive and remembers its last payload", () => {
    const clock = manualClock();
    const fd = new FailureDetector<{ cpuPct: number }>({
      clock,
      heartbeatIntervalMs: 2000,
      missedHeartbeats: 3,
    });
    fd.watch("node_a");
    for (let i = 0; i < 10; i++) {
      clock.advance(2000);
      fd.beat("node_a", { cpuPct: i });
      assert.deepEqual(fd.sweep(), []);
    }
    assert.deepEqual(fd.lastPayload("node_a"), { cpuPct: 9 });
  });

  it("ignores beats from nodes it does not watch", () => {
    const clock = manualClock();
    const fd = new FailureDetector({ clock, heartbeatIntervalMs: 1000, missedHeartbeats: 3 });
    fd.beat("node_x", {});
    assert.equal(fd.size, 0);
    assert.equal(fd.lastPayload("node_x"), undefined);
  });

  it("forgets a node that left on purpose", () => {
    const clock = manualClock();
    const fd = new FailureDetector({ clock, heartbeatIntervalMs: 1000, missedHeartbeats: 3 });
    fd.watch("node_a");
    fd.forget("node_a");
    clock.advance(10_000);
    assert.deepEqual(fd.sweep(), []);
  });
});
