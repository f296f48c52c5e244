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
  it("declares a node whose connection closed at its fencing bound, not after the missed beats", () => {
    const clock = manualClock();
    const fd = new FailureDetector({ clock, heartbeatIntervalMs: 1000, missedHeartbeats: 3 });
    assert.equal(fd.fenceAfterMs, 2000);
    assert.equal(fd.fencedBoundMs, 2750, "the fence, its quarter-interval check, the kill");
    fd.watch("node_killed");
    fd.watch("node_silent");
    clock.advance(600);
    fd.disconnected("node_killed"); // 600 ms after its last beat
    assert.equal(fd.closedDueInMs("node_killed"), 2150);
    assert.equal(fd.closedDueInMs("node_silent"), undefined);
    clock.advance(2149); // 2,749 ms after the last beat
    assert.deepEqual(fd.sweep(), [], "its worker may not have fenced yet");
    clock.advance(1);
    assert.deepEqual(fd.sweep(), [
      {
        nodeId: "node_killed",
        lastBeatMs: 1_000_000,
        unheardSinceRestart: false,
        closedAtMs: 1_000_600,
      },
    ]);
    clock.advance(249);
    assert.deepEqual(fd.sweep(), [], "silence alone waits for three missed beats");
    clock.advance(1);
    assert.deepEqual(
      fd.sweep().map((d) => d.nodeId),
      ["node_silent"],
    );
  });

  it("gives a node whose connection closed late the reconnect grace, past its fencing bound", () => {
    const clock = manualClock();
    const fd = new FailureDetector({
      clock,
      heartbeatIntervalMs: 1000,
      missedHeartbeats: 6,
      reconnectGraceMs: 900,
    });
    assert.equal(fd.fencedBoundMs, 5750);
    fd.watch("node_a");
    clock.advance(5000);
    fd.disconnected("node_a");
    clock.advance(899);
    assert.deepEqual(fd.sweep(), [], "past the fencing bound, but not the grace");
    clock.advance(1);
    assert.deepEqual(fd.sweep(), [
      {
        nodeId: "node_a",
        lastBeatMs: 1_000_000,
        unheardSinceRestart: false,
        closedAtMs: 1_005_000,
      },
    ]);
  });

  it("changes nothing for a node that connects again within the grace", () => {
    const clock = manualClock();
    const fd = new FailureDetector({ clock, heartbeatIntervalMs: 1000, missedHeartbeats: 3 });
    fd.watch("node_a");
    clock.advance(500);
    fd.disconnected("node_a");
    clock.advance(800);
    fd.watch("node_a"); // the worker is back: a fresh connection counts as a beat
    clock.advance(2999);
    assert.deepEqual(fd.sweep(), [], "judged on silence again, from the reconnect");
    clock.advance(1);
    assert.deepEqual(
      fd.sweep().map((d) => [d.nodeId, d.closedAtMs]),
      [["node_a", undefined]],
    );
  });

  it("ignores a close of a node it does not watch, and judges a closed node again as it was", () => {
    const clock = manualClock();
    const fd = new FailureDetector({ clock, heartbeatIntervalMs: 1000, missedHeartbeats: 3 });
    fd.disconnected("node_gone");
    assert.equal(fd.size, 0);
    fd.watch("node_a");
    fd.disconnected("node_a");
    clock.advance(2750);
    const dead = fd.sweep();
    assert.equal(dead[0]?.closedAtMs, 1_000_000);
    for (const d of dead) fd.judgeAgain(d);
    clock.advance(1);
    assert.deepEqual(fd.sweep(), dead);
  });
});
