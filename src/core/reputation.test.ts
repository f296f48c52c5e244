import assert from "node:assert/strict";
import { describe, it } from "node:test";
import {
  REPUTATION_PRIOR,
  REPUTATION_WEIGHTS,
  reputation,
  reputationDecay,
  type ReputationInputs,
} from "./reputation.ts";

const DAY_MS = 86_400_000;
const NOW_MS = Date.UTC(2025, 5, 1);
const daysAgo = (days: number) => NOW_MS - days * DAY_MS;

const fresh: ReputationInputs = {
  uptime30d: 0,
  registeredAtMs: NOW_MS,
  leases: [],
  verifications: [],
  nowMs: NOW_MS,
};

describe("reputation", () => {
  it("has weights that sum to 100", () => {
    assert.equal(
      Object.values(REPUTATION_WEIGHTS).reduce((a, b) => a + b, 0),
      100,
    );
  });

  it("gives a node without history the published prior", () => {
    assert.equal(reputation(fresh).score, REPUTATION_PRIOR);
    assert.equal(REPUTATION_PRIOR, 62.5);
  });

  it("halves an event's weight every 30 days and forgets it after a year", () => {
    assert.equal(reputationDecay(NOW_MS, NOW_MS), 1);
    assert.equal(reputationDecay(NOW_MS + DAY_MS, NOW_MS), 1);
    assert.equal(reputationDecay(daysAgo(30), NOW_MS), 0.5);
    assert.equal(reputationDecay(daysAgo(60), NOW_MS), 0.25);
    assert.equal(reputationDecay(daysAgo(366), NOW_MS), 0);
  });

  it("scores the worked example of the README exactly", () => {
    const result = reputation({
      uptime30d: 0.9,
      registeredAtMs: daysAgo(90),
      leases: [
        { atMs: daysAgo(0), outcome: "completed", slashed: false },
        { atMs: daysAgo(30), outcome: "completed", slashed: false },
        { atMs: daysAgo(30), outcome: "lost", slashed: true },
        { atMs: daysAgo(60), outcome: "lapsed", slashed: false },
        { atMs: daysAgo(1), outcome: "drained", slashed: false },
      ],
      verifications: [
        { atMs: daysAgo(0), passed: true },
        { atMs: daysAgo(60), passed: false },
      ],
      nowMs: NOW_MS,
    });
    const points = Object.fromEntries(
      Object.entries(result.components).map(([name, c]) => [
        name,
        Math.round(c.points * 1e4) / 1e4,
      ]),
    );
    // uptime 30 × 0.9; completion 30 × 2.5/4.25; failures 15 × ½^0.75; verification 15 × 2/3.25;
    // slashes 10 × ½^0.5.
    assert.deepEqual(points, {
      uptime: 27,
      completion: 17.6471,
      failures: 8.9191,
      verification: 9.2308,
      slashes: 7.0711,
    });
    assert.equal(result.score, 69.9);
    assert.deepEqual(
      { ...result.evidence, drained: Math.round(result.evidence.drained * 1e4) / 1e4 },
      {
        uptimeTrust: 1,
        completed: 1.5,
        lost: 0.5,
        lapsed: 0.25,
        drained: 0.9772,
        slashes: 0.5,
        verificationsPassed: 1,
        verificationsFailed: 0.25,
      },
    );
  });

  it("trusts a young node's uptime in proportion to its age", () => {
    const young = reputation({ ...fresh, uptime30d: 1, registeredAtMs: daysAgo(15) });
    assert.equal(young.evidence.uptimeTrust, 0.5);
    assert.equal(young.components.uptime.value, 0.75);
  });

  it("lets one clean lease help without making the node perfect", () => {
    const one = reputation({
      ...fresh,
      leases: [{ atMs: NOW_MS, outcome: "completed", slashed: false }],
    });
    assert.equal(one.components.completion.value, 2 / 3);
    assert.equal(one.score, 67.5);
  });

  it("costs a fresh lost lease 17.5 points from the prior, a lapsed one 12.5", () => {
    const lost = reputation({
      ...fresh,
      leases: [{ atMs: NOW_MS, outcome: "lost", slashed: true }],
    });
    const lapsed = reputation({
      ...fresh,
      leases: [{ atMs: NOW_MS, outcome: "lapsed", slashed: false }],
    });
    assert.equal(lost.score, 45);
    assert.equal(lapsed.score, 50);
  });

  it("reads a corrupt uptime figure as none", () => {
    const result = reputation({ ...fresh, uptime30d: Number.NaN, registeredAtMs: daysAgo(40) });
    assert.equal(result.components.uptime.value, 0);
  });
});
