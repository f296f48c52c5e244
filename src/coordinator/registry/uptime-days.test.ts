import assert from "node:assert/strict";
import { test } from "node:test";
import { ErrorCode, TandemError } from "../../core/errors.ts";
import { forEachDatabase } from "../../../test/support/coordinator.ts";
import { fixtureGpus, hardwareWith } from "../../../test/support/devices.ts";
import { openRegistry } from "../../../test/support/registry.ts";
import { uptimeDays } from "./uptime-days.ts";

const HOUR_MS = 3_600_000;
const DAY_MS = 24 * HOUR_MS;

forEachDatabase("uptime per day", (db) => {
  test("thirty 24 h windows from the online intervals; none before registration", async (t) => {
    const r = await openRegistry(db, t);
    const hardware = hardwareWith(await fixtureGpus("rtx4090"));
    const { nodeId } = await r.register({ region: "eu-west", zone: "eu-west-a", hardware });
    const t0 = r.clock.now();
    const at = (ms: number) => ({ actor: "test", reason: "test", nowMs: t0 + ms });
    // Online 6 h on day 1, then all of day 2 and the first half of day 3; offline since.
    await r.lifecycle.apply(nodeId, { type: "connect", verified: true }, at(0));
    await r.lifecycle.apply(nodeId, { type: "disconnect" }, at(6 * HOUR_MS));
    await r.lifecycle.apply(nodeId, { type: "connect", verified: true }, at(DAY_MS));
    await r.lifecycle.apply(nodeId, { type: "disconnect" }, at(2.5 * DAY_MS));
    const view = await uptimeDays(r.store.db, nodeId, t0 + 4 * DAY_MS);
    assert.equal(view.days.length, 30);
    assert.deepEqual(
      view.days.slice(-5).map((d) => d.uptime),
      [null, 0.25, 1, 0.5, 0],
    );
    assert.ok(view.days.slice(0, 25).every((d) => d.uptime === null));
    assert.equal(view.days.at(-1)!.from, new Date(t0 + 3 * DAY_MS).toISOString());
    await assert.rejects(
      uptimeDays(r.store.db, "node_00000000000000000000000000", t0),
      (e: unknown) => e instanceof TandemError && e.code === ErrorCode.NOT_FOUND,
    );
  });
});
