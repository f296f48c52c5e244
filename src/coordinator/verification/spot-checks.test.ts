import assert from "node:assert/strict";
import { test } from "node:test";
import pino from "pino";
import { forEachDatabase } from "../../../test/support/coordinator.ts";
import { fixtureHardware } from "../../../test/support/devices.ts";
import { openRegistry, type Registry } from "../../../test/support/registry.ts";
import { SpotChecks } from "./spot-checks.ts";

const HOUR_MS = 3_600_000;

/** The gateway's port: records the proofs asked for; a node in `busy` has one under way. */
function recordingStarter() {
  const asked: string[] = [];
  const busy = new Set<string>();
  const startProof = (id: string) => {
    if (busy.has(id)) return false;
    busy.add(id);
    asked.push(id);
    return true;
  };
  return { asked, busy, startProof };
}

async function verifiedNode(r: Registry, zone: string): Promise<string> {
  const { nodeId } = await r.register({
    region: "eu-west",
    zone,
    hardware: await fixtureHardware("none"),
  });
  const ctx = { actor: "test", reason: "test", nowMs: r.clock.now() };
  await r.lifecycle.apply(nodeId, { type: "connect", verified: false }, ctx);
  await r.lifecycle.apply(nodeId, { type: "verify" }, ctx);
  return nodeId;
}

forEachDatabase("spot checks", (db) => {
  test("every idle node is proven again at a random time within the interval, never while leased", async (t) => {
    const r = await openRegistry(db, t);
    const a = await verifiedNode(r, "eu-west-a");
    r.clock.advance(1);
    const b = await verifiedNode(r, "eu-west-b");
    r.clock.advance(1);
    const leased = await verifiedNode(r, "eu-west-c");
    const ctx = () => ({ actor: "t", reason: "t", nowMs: r.clock.now() });
    await r.lifecycle.apply(leased, { type: "lease" }, ctx());
    const t0 = r.clock.now() - 2;
    const starter = recordingStarter();
    // Draws in the order of the last proofs: a in the middle of its window, b at its start; 0.99
    // for every later one.
    const draws = [0.5, 0];
    const checks = new SpotChecks(
      {
        db: r.store.db,
        clock: r.clock,
        starter,
        events: r.events,
        logger: pino({ level: "silent" }),
        random: () => draws.shift() ?? 0.99,
      },
      { intervalMs: HOUR_MS },
    );
    assert.deepEqual(await checks.tick(), [], "nothing due right after the proofs");
    r.clock.set(t0 + HOUR_MS / 2 + 1);
    assert.deepEqual(await checks.tick(), [b], "b due at half the interval after its proof");
    r.clock.set(t0 + (HOUR_MS * 3) / 4 - 1);
    assert.deepEqual(await checks.tick(), []);
    r.clock.advance(1);
    assert.deepEqual(await checks.tick(), [a], "a due at three quarters");
    r.clock.advance(HOUR_MS);
    assert.deepEqual(await checks.tick(), [], "proofs under way are not doubled; leased: none");

    // Once a proof ends, the next one is drawn from then: 0.5 h + 0.99 × 0.5 h later.
    checks.proofEnded(a, true);
    starter.busy.delete(a);
    const next = HOUR_MS / 2 + Math.floor(0.99 * (HOUR_MS / 2));
    r.clock.advance(next - 1);
    assert.deepEqual(await checks.tick(), []);
    r.clock.advance(1);
    assert.deepEqual(await checks.tick(), [a], "never longer than the interval");

    // The leased node, idle again, is checked at once: its check fell due during the lease.
    await r.lifecycle.apply(leased, { type: "release" }, ctx());
    assert.deepEqual(await checks.tick(), [leased]);
    assert.deepEqual(starter.asked, [b, a, a, leased]);
  });

  test("a node that failed is tried again after a back-off; one that went offline is dropped", async (t) => {
    const r = await openRegistry(db, t);
    const node = await verifiedNode(r, "eu-west-a");
    const ctx = () => ({ actor: "t", reason: "t", nowMs: r.clock.now() });
    const starter = recordingStarter();
    const checks = new SpotChecks(
      {
        db: r.store.db,
        clock: r.clock,
        starter,
        events: r.events,
        logger: pino({ level: "silent" }),
        random: () => 0,
      },
      { intervalMs: HOUR_MS },
    );
    await r.lifecycle.apply(node, { type: "unverify" }, ctx());
    // 30 s, then 60 s, … never more than half the interval.
    for (const waitMs of [30_000, 60_000, 120_000]) {
      checks.proofEnded(node, false);
      starter.busy.delete(node);
      r.clock.advance(waitMs - 1);
      assert.deepEqual(await checks.tick(), [], `not before ${waitMs} ms`);
      r.clock.advance(1);
      assert.deepEqual(await checks.tick(), [node], `tried again after ${waitMs} ms`);
    }
    for (let i = 0; i < 10; i++) checks.proofEnded(node, false);
    starter.busy.delete(node);
    r.clock.advance(HOUR_MS / 2);
    assert.deepEqual(await checks.tick(), [node], "the back-off stops at half the interval");
    checks.proofEnded(node, false);
    starter.busy.delete(node);
    await r.lifecycle.apply(node, { type: "disconnect" }, ctx());
    r.clock.advance(HOUR_MS);
    assert.deepEqual(await checks.tick(), [], "offline: proven when it connects, not before");
  });
});
