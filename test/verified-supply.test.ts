/**
 * Connected vs verified supply (issue 15): GPUs of a node still `unverified`, or of a flagged one
 * (a GPU UUID seen on two devices), are connected but never counted as supply, in
 * `GET /v1/network/stats` and in `/metrics`, over real sockets on SQLite and PostgreSQL.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import type { HardwareReport } from "../src/protocol/hardware.ts";
import { forEachDatabase, httpRequest, type TestCoordinator } from "./support/coordinator.ts";
import { fixtureGpus, fixtureHardware, hardwareWith } from "./support/devices.ts";
import { registerDevice } from "./support/workers.ts";

const registerNode = async (tc: TestCoordinator, apiKey: string, hardware: HardwareReport) =>
  (await registerDevice(tc, apiKey, hardware)).nodeId;

forEachDatabase("verified supply", (db) => {
  test("unverified and flagged GPUs are connected, never verified supply", async (t) => {
    const tc = await db.startCoordinator();
    t.after(() => tc.close());
    const { apiKey } = await tc.signUp(["supplier"]);
    const rtx4090 = await fixtureHardware("rtx4090");
    const own4090 = hardwareWith(
      (await fixtureGpus("rtx4090")).map((g) => ({ ...g, uuid: "GPU-own-4090" })),
    );
    const hgx = await registerNode(tc, apiKey, await fixtureHardware("h100x8"));
    // Two devices report the same RTX 4090 UUID: both are flagged.
    const copyA = await registerNode(tc, apiKey, rtx4090);
    const copyB = await registerNode(tc, apiKey, rtx4090);
    const fresh = await registerNode(tc, apiKey, own4090);
    const at = { actor: "test", reason: "test", nowMs: Date.now() };
    const { lifecycle } = tc.coordinator;
    await lifecycle.apply(hgx, { type: "connect", verified: true }, at);
    await lifecycle.apply(copyA, { type: "connect", verified: true }, at);
    await lifecycle.apply(copyB, { type: "connect", verified: false }, at);
    await lifecycle.apply(fresh, { type: "connect", verified: false }, at);
    assert.deepEqual((await tc.client().getNode(copyA)).flags.length, 1);

    const stats = await tc.client().networkStats();
    assert.deepEqual(stats.nodes, {
      total: 4,
      online: 4,
      verified: 1,
      byStatus: { available: 2, unverified: 2 },
    });
    assert.deepEqual(stats.gpus, {
      total: 11,
      online: 11,
      verified: 8,
      byModel: [
        { model: "h100-80gb", total: 8, online: 8, verified: 8 },
        { model: "rtx-4090", total: 3, online: 3, verified: 0 },
      ],
    });

    const metrics = (await httpRequest(tc.url, "GET", "/metrics")).text;
    for (const line of [
      'tandem_gpus{state="total"} 11',
      'tandem_gpus{state="connected"} 11',
      'tandem_gpus{state="verified"} 8',
      'tandem_nodes{state="connected"} 4',
      'tandem_nodes{state="verified"} 1',
      'tandem_gpus_by_model{model="rtx-4090",state="connected"} 3',
      'tandem_gpus_by_model{model="rtx-4090",state="verified"} 0',
      'tandem_gpus_by_model{model="h100-80gb",state="verified"} 8',
    ])
      assert.ok(metrics.split("\n").includes(line), `${line} in\n${metrics}`);

    // The unique card proves itself: it becomes supply; the flagged one that verifies does not.
    await lifecycle.apply(fresh, { type: "verify" }, at);
    await lifecycle.apply(copyB, { type: "verify" }, at);
    const after = await tc.client().networkStats();
    assert.deepEqual([after.nodes.verified, after.gpus.verified], [2, 9]);
    assert.deepEqual(after.gpus.byModel[1], {
      model: "rtx-4090",
      total: 3,
      online: 3,
      verified: 1,
    });
    const scraped = (await httpRequest(tc.url, "GET", "/metrics")).text.split("\n");
    assert.ok(scraped.includes('tandem_gpus{state="verified"} 9'));
  });
});
