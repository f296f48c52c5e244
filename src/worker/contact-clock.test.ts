import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { ContactClock } from "./contact-clock.ts";

describe("contact clock", () => {
  it("does not fence before the first welcome", () => {
    const clock = new ContactClock();
    assert.equal(clock.silentMs(1_000_000), undefined);
    assert.equal(clock.overdue(1_000_000), false);
  });

  it("dates a welcome at the send time of the auth it answers", () => {
    const clock = new ContactClock();
    clock.welcomed(1_000, 4_000);
    assert.equal(clock.silentMs(1_300), 300);
    assert.equal(clock.overdue(4_999), false);
    assert.equal(clock.overdue(5_000), true);
  });

  it("dates a pong at its ping's send time, not at its arrival", () => {
    const clock = new ContactClock();
    clock.welcomed(0, 4_000);
    clock.pingSent(0, 2_000);
    clock.pingSent(1, 4_000);
    clock.pongReceived(0); // arriving at 5,000, say: proof only of what was sent by 2,000
    assert.equal(clock.silentMs(5_000), 3_000);
    assert.equal(clock.overdue(5_999), false);
    assert.equal(clock.overdue(6_000), true);
    clock.pongReceived(1);
    assert.equal(clock.overdue(6_000), false);
    assert.equal(clock.silentMs(6_000), 2_000);
  });

  it("ignores pongs of unknown pings and never moves contact back", () => {
    const clock = new ContactClock();
    clock.welcomed(0, 4_000);
    clock.pingSent(0, 1_000);
    clock.pingSent(1, 2_000);
    clock.pongReceived(1);
    clock.pongReceived(0); // acknowledged along with 1 already
    clock.pongReceived(7);
    assert.equal(clock.silentMs(3_000), 1_000);
  });

  it("makes contact fresh at a new welcome, forgetting the old connection's pings", () => {
    const clock = new ContactClock();
    clock.welcomed(0, 4_000);
    clock.pingSent(0, 1_000);
    assert.equal(clock.overdue(9_000), true);
    clock.welcomed(9_500, 6_000);
    clock.pongReceived(0);
    assert.equal(clock.silentMs(10_000), 500);
    assert.equal(clock.overdue(15_499), false);
    assert.equal(clock.overdue(15_500), true);
    assert.equal(clock.fenceAfterMs, 6_000);
  });
});
