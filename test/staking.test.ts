/**
 * Staked TDM over the HTTP API, on SQLite and PostgreSQL: a supplier stakes on its node and a
 * consumer delegates; the node's stake view, minimum and eligibility; unstake, the cooldown,
 * withdraw; commission; the supply; every refused request a typed 4xx that changes nothing; and
 * concurrent stakes, unstakes and withdrawals that never overdraw or pay twice.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { TandemApiError } from "../src/client/client.ts";
import {
  ManualClock,
  assertError,
  dumpDatabase,
  forEachDatabase,
  httpRequest,
  type DatabaseUnderTest,
  type TestCoordinator,
} from "./support/coordinator.ts";
import { registerDevice } from "./support/workers.ts";

const COOLDOWN_MS = 60_000;
const UNKNOWN_NODE = "node_00000000000000000000000000";

async function registerNode(tc: TestCoordinator, apiKey: string): Promise<string> {
  return (await registerDevice(tc, apiKey)).nodeId;
}

/** A coordinator with a manual clock, a supplier with one RTX 4090 node, a consumer; both funded. */
async function network(db: DatabaseUnderTest, t: { after(fn: () => Promise<void>): void }) {
  const clock = new ManualClock();
  const tc = await db.startCoordinator({ clock, config: { stake: { cooldownMs: COOLDOWN_MS } } });
  t.after(() => tc.close());
  const supplier = await tc.signUp(["supplier"]);
  const consumer = await tc.signUp(["consumer"]);
  const nodeId = await registerNode(tc, supplier.apiKey);
  const admin = tc.client(tc.adminKey);
  for (const who of [supplier, consumer])
    await admin.deposit({ accountId: who.accountId, currency: "TDM", amount: "100" });
  return { tc, clock, supplier, consumer, nodeId, admin };
}

const tdm = async (tc: TestCoordinator, apiKey: string) =>
  (await tc.client(apiKey).wallet()).balances.find((b) => b.currency === "TDM")?.wallet;

const post = (tc: TestCoordinator, path: string, apiKey: string, key: string, body?: unknown) =>
  httpRequest(tc.url, "POST", path, {
    apiKey,
    headers: { "idempotency-key": key },
    ...(body === undefined ? {} : { body }),
  });

forEachDatabase("staking", (db) => {
  test("a supplier stakes on its node, a consumer delegates; unstake, cooldown, withdraw", async (t) => {
    const { tc, clock, supplier, consumer, nodeId, admin } = await network(db, t);
    const before = await tc.client().nodeStake(nodeId);
    assert.deepEqual(before, {
      nodeId,
      staked: "0.000000",
      active: "0.000000",
      unbonding: "0.000000",
      // One RTX 4090, a consumer-tier GPU: 100 TDM.
      minimum: "100.000000",
      eligible: false,
      commissionPercent: "10.00",
      stakers: 0,
      positions: 0,
      rewardsEarned: "0.000000",
      rewardsCommission: "0.000000",
      rewardedBlocks: 0,
    });

    const own = await supplier.client.stake({ nodeId, amount: "60" }, "own-1");
    assert.equal(own.status, "active");
    assert.equal(own.amount, "60.000000");
    assert.ok(own.transactionId?.startsWith("tx_"));
    const delegated = await consumer.client.stake({ nodeId, amount: "40.5" });
    assert.equal(await tdm(tc, supplier.apiKey), "40.000000");
    assert.equal(await tdm(tc, consumer.apiKey), "59.500000");
    const staked = await tc.client().nodeStake(nodeId);
    assert.deepEqual(
      [staked.staked, staked.active, staked.eligible, staked.stakers, staked.positions],
      ["100.500000", "100.500000", true, 2, 2],
    );
    // A replay answers the first answer and moves nothing.
    const replay = await post(tc, "/v1/stakes", supplier.apiKey, "own-1", { nodeId, amount: "60" });
    assert.equal(replay.status, 201);
    assert.equal(replay.headers.get("idempotent-replayed"), "true");
    assert.deepEqual(replay.json, own);
    assert.equal(await tdm(tc, supplier.apiKey), "40.000000");

    const supply = await tc.client().tokenSupply();
    assert.deepEqual(supply, {
      maxSupply: "800000000.000000",
      genesis: "500000000.000000",
      emitted: "0.000000",
      burned: "0.000000",
      totalSupply: "500000000.000000",
      staked: "100.500000",
      circulating: "499999899.500000",
    });

    const unbonding = await consumer.client.unstake(delegated.id, "u-1");
    assert.equal(unbonding.status, "unbonding");
    assert.equal(unbonding.withdrawableAt, new Date(clock.now() + COOLDOWN_MS).toISOString());
    // Unbonding stake still counts (and can be slashed), but not toward eligibility.
    const cooling = await tc.client().nodeStake(nodeId);
    assert.deepEqual(
      [cooling.staked, cooling.active, cooling.unbonding, cooling.eligible],
      ["100.500000", "60.000000", "40.500000", false],
    );
    assertError(
      await post(tc, `/v1/stakes/${delegated.id}/withdraw`, consumer.apiKey, "w-1"),
      409,
      "INVALID_TRANSITION",
      "withdraw during the cooldown",
    );
    clock.advance(COOLDOWN_MS);
    const paid = await consumer.client.withdrawStake(delegated.id, "w-2");
    assert.equal(paid.status, "withdrawn");
    assert.ok(paid.transactionId !== null && paid.transactionId !== delegated.transactionId);
    assert.equal(await tdm(tc, consumer.apiKey), "100.000000");
    const again = await post(tc, `/v1/stakes/${delegated.id}/withdraw`, consumer.apiKey, "w-2");
    assert.equal(again.status, 200);
    assert.equal(again.headers.get("idempotent-replayed"), "true");
    assert.equal(await tdm(tc, consumer.apiKey), "100.000000");

    const mine = await consumer.client.stakes();
    assert.deepEqual(
      mine.items.map((s) => [s.id, s.status]),
      [[delegated.id, "withdrawn"]],
    );
    assert.deepEqual((await supplier.client.stakes({ status: "withdrawn" })).items, []);

    // Every change is in the node's public history, with no account named.
    const history = await tc.client().nodeHistory(nodeId);
    const rows = history.items.filter((h) => h.action.startsWith("stake-"));
    assert.deepEqual(
      rows.map((h) => [h.action, h.actor, h.detail["amount"]]),
      [
        ["stake-added", "account", "60.000000"],
        ["stake-added", "account", "40.500000"],
        ["stake-unbonding", "account", "40.500000"],
        ["stake-withdrawn", "account", "40.500000"],
      ],
    );
    const audit = await admin.ledgerAudit();
    assert.equal(audit.ok, true, JSON.stringify(audit));
    assert.deepEqual(audit.supply.problems, []);
    assert.equal((await tc.client().tokenSupply()).staked, "60.000000");
  });

  test("the commission is the owner's to set, 10 % until then", async (t) => {
    const { tc, supplier, consumer, nodeId } = await network(db, t);
    const set = await supplier.client.setCommission(nodeId, "12.5");
    assert.equal(set.commissionPercent, "12.50");
    assert.equal((await tc.client().nodeStake(nodeId)).commissionPercent, "12.50");
    const other = await tc.signUp(["supplier"]);
    const before = await dumpDatabase(tc.coordinator.store);
    const put = (apiKey: string, commissionPercent: unknown, node = nodeId) =>
      httpRequest(tc.url, "PUT", `/v1/nodes/${node}/commission`, {
        apiKey,
        body: { commissionPercent },
      });
    assertError(await put(other.apiKey, "5"), 403, "FORBIDDEN", "another supplier");
    assertError(await put(consumer.apiKey, "5"), 403, "FORBIDDEN", "a consumer");
    assertError(await put(supplier.apiKey, "100.5"), 400, "VALIDATION_FAILED", "over 100 %");
    assertError(await put(supplier.apiKey, "-1"), 400, "VALIDATION_FAILED", "negative");
    assertError(await put(supplier.apiKey, "1.234"), 400, "VALIDATION_FAILED", "3 decimals");
    assertError(await put(supplier.apiKey, 5), 400, "VALIDATION_FAILED", "a number");
    assertError(await put(supplier.apiKey, "5", UNKNOWN_NODE), 404, "NOT_FOUND", "unknown node");
    assert.deepEqual(await dumpDatabase(tc.coordinator.store), before);
    const history = await tc.client(supplier.apiKey).nodeHistory(nodeId);
    const change = history.items.find((h) => h.action === "commission-changed");
    assert.deepEqual([change?.from, change?.to], ["10.00%", "12.50%"]);
  });

  test("refused stakes, unstakes and withdrawals: each a typed 4xx that changes nothing", async (t) => {
    const { tc, supplier, consumer, nodeId, admin } = await network(db, t);
    const stake = await consumer.client.stake({ nodeId, amount: "10" }, "k-1");
    await consumer.client.unstake(stake.id, "u-1");
    const active = await consumer.client.stake({ nodeId, amount: "10" }, "k-2");
    const revoked = await registerDevice(tc, supplier.apiKey);
    const revokedNode = revoked.nodeId;
    await admin.revokeDevice(revoked.deviceId, "test");
    const before = await dumpDatabase(tc.coordinator.store);

    const add = (body: unknown, key = `k-${Math.random()}`) =>
      post(tc, "/v1/stakes", consumer.apiKey, key, body);
    assertError(
      await add({ nodeId, amount: "80.000001" }),
      402,
      "INSUFFICIENT_FUNDS",
      "over wallet",
    );
    const below = assertError(
      await add({ nodeId, amount: "0.5" }),
      400,
      "INVALID_AMOUNT",
      "below min",
    );
    assert.equal(below.details?.["problem"], "BELOW_MINIMUM");
    assertError(await add({ nodeId, amount: "-5" }), 400, "INVALID_AMOUNT", "negative");
    assertError(await add({ nodeId, amount: "0" }), 400, "INVALID_AMOUNT", "zero");
    assertError(await add({ nodeId, amount: "1.0000001" }), 400, "INVALID_AMOUNT", "7 decimals");
    assertError(await add({ nodeId, amount: 5 }), 400, "VALIDATION_FAILED", "a number");
    assertError(
      await add({ nodeId, amount: "5", extra: 1 }),
      400,
      "VALIDATION_FAILED",
      "unknown field",
    );
    assertError(await add({ nodeId: UNKNOWN_NODE, amount: "5" }), 404, "NOT_FOUND", "unknown node");
    assertError(await add({ nodeId: revokedNode, amount: "5" }), 409, "CONFLICT", "revoked node");
    assertError(
      await add({ nodeId, amount: "11" }, "k-1"),
      409,
      "IDEMPOTENCY_CONFLICT",
      "replay, other body",
    );
    assertError(
      await add({ nodeId: "node_bad", amount: "5" }),
      400,
      "VALIDATION_FAILED",
      "malformed node id",
    );
    assert.deepEqual(await dumpDatabase(tc.coordinator.store), before);
    const afterAdd = await dumpDatabase(tc.coordinator.store);

    const action = (
      id: string,
      what: "unstake" | "withdraw",
      key: string,
      apiKey = consumer.apiKey,
    ) => post(tc, `/v1/stakes/${id}/${what}`, apiKey, key);
    assertError(
      await action(stake.id, "unstake", "u-2"),
      409,
      "INVALID_TRANSITION",
      "unstake twice",
    );
    assertError(
      await action(active.id, "unstake", "u-1"),
      409,
      "IDEMPOTENCY_CONFLICT",
      "unstake key reused",
    );
    assertError(
      await action(stake.id, "withdraw", "w-1"),
      409,
      "INVALID_TRANSITION",
      "in the cooldown",
    );
    assertError(
      await action(active.id, "withdraw", "w-2"),
      409,
      "INVALID_TRANSITION",
      "still active",
    );
    assertError(
      await action(stake.id, "unstake", "u-3", supplier.apiKey),
      404,
      "NOT_FOUND",
      "not yours",
    );
    assertError(
      await action("stk_00000000000000000000000000", "unstake", "u-4"),
      404,
      "NOT_FOUND",
      "unknown stake",
    );
    assertError(
      await httpRequest(tc.url, "POST", `/v1/stakes`, {
        apiKey: consumer.apiKey,
        body: { nodeId, amount: "5" },
      }),
      400,
      "VALIDATION_FAILED",
      "no idempotency key",
    );
    assertError(
      await httpRequest(tc.url, "POST", `/v1/stakes`, { body: { nodeId, amount: "5" } }),
      401,
      "UNAUTHENTICATED",
      "anonymous",
    );
    assert.deepEqual(await dumpDatabase(tc.coordinator.store), afterAdd);
    // The replayed unstake answers the first answer.
    const replay = await action(stake.id, "unstake", "u-1");
    assert.equal(replay.status, 200);
    assert.equal(replay.headers.get("idempotent-replayed"), "true");
    const audit = await admin.ledgerAudit();
    assert.equal(audit.ok, true, JSON.stringify(audit));
  });

  test("concurrent stakes, unstakes and withdrawals never overdraw, unstake twice or pay twice", async (t) => {
    const { tc, clock, consumer, nodeId, admin } = await network(db, t);
    // 100 TDM in the wallet, ten stakes of 30 at once: exactly three fit.
    const stakes = await Promise.allSettled(
      Array.from({ length: 10 }, () => consumer.client.stake({ nodeId, amount: "30" })),
    );
    const made = stakes.flatMap((s) => (s.status === "fulfilled" ? [s.value] : []));
    assert.equal(made.length, 3);
    for (const s of stakes)
      if (s.status === "rejected") {
        assert.ok(s.reason instanceof TandemApiError);
        assert.equal(s.reason.code, "INSUFFICIENT_FUNDS");
      }
    assert.equal(await tdm(tc, consumer.apiKey), "10.000000");
    const target = made[0]!;
    const unstakes = await Promise.allSettled(
      Array.from({ length: 6 }, () => consumer.client.unstake(target.id)),
    );
    assert.equal(unstakes.filter((u) => u.status === "fulfilled").length, 1);
    clock.advance(COOLDOWN_MS);
    const withdrawals = await Promise.allSettled(
      Array.from({ length: 6 }, () => consumer.client.withdrawStake(target.id)),
    );
    assert.equal(withdrawals.filter((w) => w.status === "fulfilled").length, 1);
    for (const w of withdrawals)
      if (w.status === "rejected")
        assert.equal((w.reason as TandemApiError).code, "INVALID_TRANSITION");
    assert.equal(await tdm(tc, consumer.apiKey), "40.000000");
    const view = await tc.client().nodeStake(nodeId);
    assert.deepEqual([view.staked, view.positions], ["60.000000", 2]);
    const audit = await admin.ledgerAudit();
    assert.equal(audit.ok, true, JSON.stringify(audit));
  });

  test("genesis is minted once, across restarts", async (t) => {
    const tc = await db.startCoordinator();
    const again = await tc.restart();
    t.after(() => again.close());
    assert.equal((await again.client().tokenSupply()).genesis, "500000000.000000");
    const audit = await again.client(again.adminKey).ledgerAudit();
    assert.equal(audit.ok, true);
    assert.equal(audit.supply.totalSupply, "500000000.000000");
  });
});
