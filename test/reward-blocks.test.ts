/**
 * Reward blocks through a real coordinator and its HTTP API, on SQLite and PostgreSQL: the leader's
 * ticker pays a finished hour once; the blocks, one block's nodes (rewarded and refused with the
 * reason), a node's rewards and an account's earnings are served; `emitted` moves; a restart pays
 * the hours missed while down once each; bad input is a typed 4xx.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { ledgerAudit } from "../src/coordinator/billing/audit.ts";
import type { TandemClient } from "../src/client/client.ts";
import { fixtureHardware } from "./support/devices.ts";
import {
  ManualClock,
  assertError,
  forEachDatabase,
  httpRequest,
  type TestCoordinator,
} from "./support/coordinator.ts";
import { GENESIS_MS, hourStart } from "./support/reward-network.ts";
import { registerDevice } from "./support/workers.ts";

let registered = 0;

async function registerNode(tc: TestCoordinator, apiKey: string): Promise<string> {
  const hardware = await fixtureHardware("rtx4090");
  // Distinct GPU UUIDs: shared ones would flag both nodes as duplicates.
  const n = ++registered;
  hardware.gpus = hardware.gpus.map((g) => ({ ...g, uuid: `GPU-api-${process.pid}-${n}` }));
  return (await registerDevice(tc, apiKey, hardware)).nodeId;
}

async function blocksOf(client: TandemClient, count: number) {
  for (let i = 0; i < 200; i++) {
    const page = await client.rewardBlocks({ limit: 100 });
    if (page.items.length >= count) return page;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  throw new Error(`fewer than ${count} reward blocks after 10 s`);
}

forEachDatabase("reward blocks over the API", (db) => {
  test("the leader pays a finished hour once; blocks, refusals, node and account rewards are served", async (t) => {
    const clock = new ManualClock(GENESIS_MS - 600_000);
    const config = { genesisAtMs: GENESIS_MS, rewardBlockCheckMs: 100 };
    let tc = await db.startCoordinator({ clock, config });
    t.after(() => tc.close());
    const supplier = await tc.signUp(["supplier"]);
    const consumer = await tc.signUp(["consumer"]);
    const admin = tc.client(tc.adminKey);
    const node = await registerNode(tc, supplier.apiKey);
    const idle = await registerNode(tc, supplier.apiKey);
    const ctx = { actor: "test", reason: "test", nowMs: clock.now() };
    await tc.coordinator.lifecycle.apply(node, { type: "connect", verified: false }, ctx);
    await tc.coordinator.lifecycle.apply(node, { type: "verify" }, ctx);
    for (const [who, amount] of [
      [supplier, "200"],
      [consumer, "50"],
    ] as const)
      await admin.deposit({ accountId: who.accountId, currency: "TDM", amount });
    const own = await supplier.client.stake({ nodeId: node, amount: "100" });
    const delegated = await consumer.client.stake({ nodeId: node, amount: "50" });
    assert.deepEqual((await tc.client().rewardBlocks()).items, []);

    clock.set(hourStart(1) + 1_000);
    const page = await blocksOf(tc.client(), 1);
    assert.deepEqual(page.items[0], {
      hour: 0,
      startsAt: new Date(GENESIS_MS).toISOString(),
      emission: "4566.210045",
      minted: "4566.210045",
      capacityTflops: "82.600",
      nominated: 2,
      rewarded: 1,
      refused: 1,
      createdAt: new Date(clock.now()).toISOString(),
    });
    const block = await tc.client().rewardBlock(0);
    const rows = block.nodes.map((n) => [n.nodeId, n.reason, n.share, n.commission, n.staked]);
    assert.deepEqual(
      rows.sort((a, b) => (String(a[0]) < String(b[0]) ? -1 : 1)),
      [
        [node, null, "4566.210045", "456.621004", "150.000000"],
        [idle, "not-verified", "0.000000", "0.000000", "0.000000"],
      ].sort((a, b) => (String(a[0]) < String(b[0]) ? -1 : 1)),
    );
    const refused = await tc.client().rewardBlock(0, { outcome: "refused" });
    assert.deepEqual(
      refused.nodes.map((n) => n.nodeId),
      [idle],
    );
    // 4,109.589041 TDM to the stakers, 100 : 50; the odd unit to the larger remainder.
    const mine = await supplier.client.rewards();
    assert.deepEqual(mine, {
      total: "3196.347031",
      commission: "456.621004",
      staking: "2739.726027",
      nodes: [
        {
          nodeId: node,
          commission: "456.621004",
          staking: "2739.726027",
          positions: [{ stakeId: own.id, earned: "2739.726027" }],
        },
      ],
    });
    assert.equal((await consumer.client.rewards()).nodes[0]?.positions[0]?.earned, "1369.863014");
    assert.equal(delegated.nodeId, node);
    const stake = await tc.client().nodeStake(node);
    assert.deepEqual(
      [stake.staked, stake.rewardsEarned, stake.rewardsCommission, stake.rewardedBlocks],
      ["4259.589041", "4566.210045", "456.621004", 1],
    );
    assert.equal((await tc.client().tokenSupply()).emitted, "4566.210045");

    assertError(await httpRequest(tc.url, "GET", "/v1/token/blocks/1", {}), 404, "NOT_FOUND");
    for (const path of [
      "/v1/token/blocks/x",
      "/v1/token/blocks?limit=0",
      "/v1/token/blocks/0?outcome=maybe",
    ]) {
      const response = await httpRequest(tc.url, "GET", path, {});
      assert.equal(response.status, 400, path);
    }
    const anonymous = await httpRequest(tc.url, "GET", "/v1/rewards", {});
    assert.equal(anonymous.status, 401);

    // Down through hours 1 and 2; back after hour 2: each missed hour is paid once.
    await tc.coordinator.close();
    clock.set(hourStart(3) + 1_000);
    tc = await tc.restart();
    const after = await blocksOf(tc.client(), 3);
    assert.deepEqual(
      after.items.map((b) => b.hour),
      [2, 1, 0],
    );
    await new Promise((resolve) => setTimeout(resolve, 300));
    assert.equal((await tc.client().rewardBlocks()).items.length, 3);
    const audit = await ledgerAudit(tc.coordinator.store.db);
    assert.ok(audit.ok, JSON.stringify(audit));
    const emitted = after.items.reduce((s, b) => s + BigInt(b.minted.replace(".", "")), 0n);
    assert.equal(
      (await tc.client().tokenSupply()).emitted.replace(".", ""),
      String(emitted).padStart(7, "0"),
    );
  });
});
