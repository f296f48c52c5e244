/**
 * Reputation through the public API, on SQLite and on PostgreSQL: lease outcomes and verification
 * results recorded for two nodes move their scores; `GET /v1/nodes/:id` and `GET /v1/nodes` show the
 * cached score, the list filters on it (`minReputation`), `GET /v1/nodes/:id/reputation` breaks it
 * down; and anyone can recompute it from `GET /v1/nodes/:id/history` with src/core/reputation.ts.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import type { TandemClient } from "../src/client/client.ts";
import {
  REPUTATION_PRIOR,
  reputation,
  type ReputationLease,
  type ReputationLeaseOutcome,
  type ReputationVerification,
} from "../src/core/reputation.ts";
import { assertError, forEachDatabase, httpRequest, ManualClock } from "./support/coordinator.ts";
import { fixtureHardware, newDeviceKey, signedRegistration } from "./support/devices.ts";
import { recordLeaseEnd } from "./support/leases.ts";

const DAY_MS = 86_400_000;

async function registerNode(client: TandemClient, zone: string): Promise<string> {
  const registered = await client.registerDevice(
    signedRegistration(newDeviceKey(), {
      region: "eu-west",
      zone,
      hardware: await fixtureHardware("none"),
    }),
  );
  return registered.nodeId;
}

/** What any reader of the public API can do: rebuild the score from the node and its history. */
async function recompute(client: TandemClient, nodeId: string, nowMs: number): Promise<number> {
  const node = await client.getNode(nodeId);
  const history = await client.nodeHistory(nodeId, { limit: 500 });
  const leases: ReputationLease[] = [];
  const verifications: ReputationVerification[] = [];
  for (const entry of history.items) {
    const atMs = Date.parse(entry.at);
    if (entry.action === "lease-ended") {
      const { outcome, slashed } = entry.detail as { outcome: string; slashed: string | null };
      leases.push({
        atMs,
        outcome: outcome as ReputationLeaseOutcome,
        slashed: slashed !== null && Number(slashed) > 0,
      });
    } else if (entry.action.startsWith("verification-")) {
      verifications.push({ atMs, passed: entry.action === "verification-passed" });
    }
  }
  return reputation({
    uptime30d: node.uptime["30d"],
    registeredAtMs: Date.parse(node.registeredAt),
    leases,
    verifications,
    nowMs,
  }).score;
}

forEachDatabase("reputation API", (db) => {
  test("scores follow the public history: node, list, filter, breakdown, recomputed", async (t) => {
    const clock = new ManualClock();
    const tc = await db.startCoordinator({ clock });
    t.after(() => tc.close());
    const supplier = await tc.signUp(["supplier"]);
    const good = await registerNode(supplier.client, "eu-west-a");
    const bad = await registerNode(supplier.client, "eu-west-b");
    const anyone = tc.client();

    assert.equal((await anyone.getNode(good)).reputation, REPUTATION_PRIOR);
    const fresh = await anyone.nodeReputation(good);
    assert.equal(fresh.score, REPUTATION_PRIOR);
    assert.deepEqual(
      Object.values(fresh.components).map((c) => c.points),
      [15, 15, 15, 7.5, 10],
    );

    const t0 = clock.now();
    const store = tc.coordinator.store.db;
    await recordLeaseEnd(store, good, "completed", t0);
    await recordLeaseEnd(store, good, "completed", t0);
    await recordLeaseEnd(store, bad, "lost", t0);
    await recordLeaseEnd(store, bad, "lapsed", t0);
    const lifecycle = tc.coordinator.lifecycle;
    const ctx = { actor: "coordinator", reason: "benchmark", nowMs: t0 };
    await lifecycle.recordVerification(good, { passed: true, detail: {} }, ctx);
    await lifecycle.recordVerification(bad, { passed: false, detail: {} }, ctx);

    // good: 15 + 30 × 3/4 + 15 + 15 × 2/3 + 10 = 72.5.
    assert.equal((await anyone.getNode(good)).reputation, 72.5);
    const breakdown = await anyone.nodeReputation(good);
    assert.equal(breakdown.score, 72.5);
    assert.equal(breakdown.components.completion.points, 22.5);
    assert.equal(breakdown.evidence.completed, 2);
    assert.equal(breakdown.computedAt, new Date(t0).toISOString());
    // bad: 15 + 30 × 1/4 + 15 × ¼ + 15 × ⅓ + 10 × ½ = 36.25.
    assert.equal((await anyone.getNode(bad)).reputation, 36.3);
    assert.equal((await anyone.nodeReputation(bad)).score, 36.3);

    const listed = await anyone.listNodes({});
    assert.deepEqual(
      new Map(listed.items.map((n) => [n.id, n.reputation])),
      new Map([
        [good, 72.5],
        [bad, 36.3],
      ]),
    );
    assert.deepEqual(
      (await anyone.listNodes({ minReputation: 70 })).items.map((n) => n.id),
      [good],
    );
    assert.equal((await anyone.listNodes({ minReputation: 36.3 })).items.length, 2);
    assertError(
      await httpRequest(tc.url, "GET", "/v1/nodes?minReputation=101"),
      400,
      "VALIDATION_FAILED",
    );

    // Later, on the periodic pass: the failures fade, the cached score catches up, and the score
    // is still what the public history gives.
    const later = clock.advance(45 * DAY_MS);
    await lifecycle.refreshAllUptime(later);
    for (const nodeId of [good, bad]) {
      const { score } = await anyone.nodeReputation(nodeId);
      assert.equal((await anyone.getNode(nodeId)).reputation, score, nodeId);
      assert.equal(await recompute(anyone, nodeId, later), score, nodeId);
    }
    const faded = await anyone.nodeReputation(bad);
    assert.ok(faded.evidence.lost < 0.36, "a 45-day-old failure weighs < ½");
    assert.ok(faded.components.failures.points > 3.75);
    assertError(
      await httpRequest(tc.url, "GET", "/v1/nodes/node_00000000000000000000000000/reputation"),
      404,
      "NOT_FOUND",
    );
  });
});
