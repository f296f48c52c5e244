/**
 * Slashes paid from stake (issue 16 item 5), on SQLite and PostgreSQL: stakes made, unstaked and
 * withdrawn over the HTTP API, slashes taken through the coordinator's own Billing (what the
 * failover calls). A slash takes the node's stake first, pro rata across its active and unbonding
 * positions, converted to the lease's currency at the oracle's rate (2 TDM per USD) in the
 * network's favour; then the supplier's unpaid earnings; a shortfall is left only when both are
 * exhausted. Once per lease, never a negative stake, under concurrent stakes, unstakes and
 * withdrawals.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { formatMoney, money, units, type Currency } from "../src/core/money.ts";
import { IdPrefix, newId } from "../src/protocol/ids.ts";
import {
  ManualClock,
  forEachDatabase,
  type DatabaseUnderTest,
  type TestCoordinator,
} from "./support/coordinator.ts";
import { registerDevice } from "./support/workers.ts";

const COOLDOWN_MS = 60_000;

/** A coordinator, a supplier with one node, a delegator (100 TDM each) and a consumer (1000 USDC). */
async function network(db: DatabaseUnderTest, t: { after(fn: () => Promise<void>): void }) {
  const clock = new ManualClock();
  const tc = await db.startCoordinator({ clock, config: { stake: { cooldownMs: COOLDOWN_MS } } });
  t.after(() => tc.close());
  const supplier = await tc.signUp(["supplier"]);
  const delegator = await tc.signUp(["consumer"]);
  const consumer = await tc.signUp(["consumer"]);
  const { nodeId } = await registerDevice(tc, supplier.apiKey);
  const admin = tc.client(tc.adminKey);
  for (const who of [supplier, delegator])
    await admin.deposit({ accountId: who.accountId, currency: "TDM", amount: "100" });
  await admin.deposit({ accountId: consumer.accountId, currency: "USDC", amount: "1000" });
  const { billing } = tc.coordinator;
  const clusterId = newId(IdPrefix.cluster);
  /** Slashes lease `lease` of the node `owed` (lease currency) for the consumer. */
  const slash = (lease: string, owed: string, currency: Currency = "USDC") =>
    billing.transaction((tx) =>
      billing.slash(tx, {
        clusterId,
        leaseId: `${clusterId}/${lease}`,
        nodeId,
        supplierAccountId: supplier.accountId,
        consumerAccountId: consumer.accountId,
        currency,
        amount: money(owed),
        reason: "went offline",
        nowMs: clock.now(),
      }),
    );
  /** The supplier earns `minutes` at 1 USDC/h on a cluster of the consumer's (unpaid earnings). */
  const earn = async (minutes: number) => {
    const id = newId(IdPrefix.cluster);
    const quote = billing.quote({
      currency: "USDC",
      durationMinutes: 60,
      nodes: [{ nodeId, pricePerHour: money("1") }],
    });
    await billing.transaction(async (tx) => {
      const charged = await billing.chargeDeploy(tx, {
        clusterId: id,
        consumerAccountId: consumer.accountId,
        quote,
        idempotencyKey: `earn-${id}`,
        nowMs: clock.now(),
      });
      assert.equal(charged.ok, true);
      const settled = await billing.settleLease(tx, {
        clusterId: id,
        leaseId: `${id}/0`,
        supplierAccountId: supplier.accountId,
        currency: "USDC",
        pricePerHour: money("1"),
        servedMinutes: minutes,
        nowMs: clock.now(),
      });
      assert.equal(settled.ok, true);
    });
  };
  return { tc, clock, supplier, delegator, consumer, nodeId, admin, slash, earn };
}

const balance = async (tc: TestCoordinator, apiKey: string, currency: Currency) => {
  const b = (await tc.client(apiKey).wallet()).balances.find((x) => x.currency === currency);
  return { wallet: b?.wallet ?? "0.000000", earnings: b?.earnings ?? "0.000000" };
};

const fmt = (result: {
  owed: bigint;
  taken: bigint;
  fromStake: bigint;
  fromEarnings: bigint;
  stakeTaken: bigint;
  shortfall: bigint;
}) =>
  Object.fromEntries(
    (["owed", "taken", "fromStake", "fromEarnings", "stakeTaken", "shortfall"] as const).map(
      (k) => [k, formatMoney(units(result[k]))],
    ),
  );

forEachDatabase("slashes paid from stake", (db) => {
  test("the stake pays first, pro rata over active and unbonding positions, once per lease", async (t) => {
    const n = await network(db, t);
    const own = await n.supplier.client.stake({ nodeId: n.nodeId, amount: "30" });
    const leaving = await n.delegator.client.stake({ nodeId: n.nodeId, amount: "10" });
    await n.delegator.client.unstake(leaving.id); // unbonding: still slashable
    const gone = await n.delegator.client.stake({ nodeId: n.nodeId, amount: "5" });
    await n.delegator.client.unstake(gone.id);
    n.clock.advance(COOLDOWN_MS);
    await n.delegator.client.withdrawStake(gone.id); // withdrawn: out of reach
    await n.earn(30); // 0.496250 USDC unpaid: untouched while the stake covers the slash

    // 8 USDC owed = 16 TDM: 30:10 → 12 and 4.
    const result = await n.slash("0", "8");
    assert.deepEqual(fmt(result), {
      owed: "8.000000",
      taken: "8.000000",
      fromStake: "8.000000",
      fromEarnings: "0.000000",
      stakeTaken: "16.000000",
      shortfall: "0.000000",
    });
    // 1000 − 1.0225 paid for the cluster the supplier earned on + 8.
    assert.equal((await balance(n.tc, n.consumer.apiKey, "USDC")).wallet, "1006.977500");
    assert.equal((await balance(n.tc, n.supplier.apiKey, "USDC")).earnings, "0.496250");
    const view = await n.tc.client().nodeStake(n.nodeId);
    assert.deepEqual(
      [view.staked, view.active, view.unbonding, view.positions],
      ["24.000000", "18.000000", "6.000000", 2],
    );

    const again = await n.slash("0", "8");
    assert.equal(again.transactionId, result.transactionId, "the lease's slash replays");
    assert.equal((await n.tc.client().nodeStake(n.nodeId)).staked, "24.000000");

    // The node's public history and each staker's wallet history show the slash per position.
    const history = await n.tc.client().nodeHistory(n.nodeId, { limit: 100 });
    const slashed = history.items.filter((h) => h.action === "stake-slashed");
    assert.deepEqual(
      slashed.map((h) => [h.detail.stakeId, h.detail.amount, h.detail.transactionId]).sort(),
      [
        [own.id, "12.000000", result.transactionId],
        [leaving.id, "4.000000", result.transactionId],
      ].sort(),
    );
    for (const [who, stakeId, amount] of [
      [n.supplier, own.id, "-12.000000"],
      [n.delegator, leaving.id, "-4.000000"],
    ] as const) {
      const items = (await who.client.walletTransactions({ limit: 50 })).items;
      const entry = items.find((i) => i.id === result.transactionId);
      assert.deepEqual(
        entry?.entries.map((e) => [e.balance, e.stakeId, e.currency, e.leg, e.amount]),
        [["stake", stakeId, "TDM", "slash", amount]],
      );
    }

    // The unbonding position pays back what the slash left of it.
    n.clock.advance(COOLDOWN_MS);
    await n.delegator.client.withdrawStake(leaving.id);
    assert.equal((await balance(n.tc, n.delegator.apiKey, "TDM")).wallet, "96.000000");
    const audit = await n.admin.ledgerAudit();
    assert.equal(audit.ok, true, JSON.stringify(audit));
  });

  test("stake covers part, earnings the rest, rounded for the network; a shortfall only when both run out", async (t) => {
    const n = await network(db, t);
    // 1.000001 TDM staked: ⌊1.000001 / 2⌋ = 0.500000 USDC reaches the consumer for all of it.
    await n.supplier.client.stake({ nodeId: n.nodeId, amount: "1.000001" });
    await n.earn(30); // 0.496250 USDC unpaid
    const first = await n.slash("0", "0.9");
    assert.deepEqual(fmt(first), {
      owed: "0.900000",
      taken: "0.900000",
      fromStake: "0.500000",
      fromEarnings: "0.400000",
      stakeTaken: "1.000001",
      shortfall: "0.000000",
    });
    assert.equal((await n.tc.client().nodeStake(n.nodeId)).staked, "0.000000");
    assert.equal((await balance(n.tc, n.supplier.apiKey, "USDC")).earnings, "0.096250");
    // Nothing staked now: earnings alone, then the shortfall.
    const second = await n.slash("1", "0.5");
    assert.deepEqual(
      [second.fromStake, second.fromEarnings, second.shortfall].map((m) => formatMoney(m)),
      ["0.000000", "0.096250", "0.403750"],
    );
    // A lease paid in TDM takes its stake unconverted.
    await n.supplier.client.stake({ nodeId: n.nodeId, amount: "3" });
    const tdm = await n.slash("2", "2.5", "TDM");
    assert.deepEqual(
      [tdm.fromStake, tdm.stakeTaken, tdm.shortfall].map((m) => formatMoney(m)),
      ["2.500000", "2.500000", "0.000000"],
    );
    assert.equal((await balance(n.tc, n.consumer.apiKey, "TDM")).wallet, "2.500000");
    // 1000 − 1.0225 for the cluster the supplier earned on + 0.9 + 0.09625.
    assert.equal((await balance(n.tc, n.consumer.apiKey, "USDC")).wallet, "999.973750");
    const audit = await n.admin.ledgerAudit();
    assert.equal(audit.ok, true, JSON.stringify(audit));
  });

  test("stakes, unstakes and withdrawals racing slashes on one node: no negative stake, each slash once, every unit kept", async (t) => {
    const n = await network(db, t);
    const positions = [];
    for (const amount of ["10", "20", "30"])
      positions.push(await n.delegator.client.stake({ nodeId: n.nodeId, amount }));
    await n.supplier.client.stake({ nodeId: n.nodeId, amount: "40" });
    await n.delegator.client.unstake(positions[0]!.id);
    n.clock.advance(COOLDOWN_MS);
    // Slashes of 6 leases, each asked three times (one must win), owed 9 USDC = 18 TDM each:
    // 108 TDM owed against 100 staked and whatever the racing moves leave.
    const slashes = Array.from({ length: 6 }, (_, i) =>
      Array.from({ length: 3 }, () => n.slash(String(i), "9")),
    ).flat();
    const moves = [
      n.delegator.client.withdrawStake(positions[0]!.id),
      n.delegator.client.unstake(positions[1]!.id),
      n.delegator.client.stake({ nodeId: n.nodeId, amount: "25" }),
      n.supplier.client.stake({ nodeId: n.nodeId, amount: "5" }),
    ];
    const done = await Promise.allSettled([...slashes, ...moves]);
    for (const d of done)
      assert.equal(d.status, "fulfilled", String((d as PromiseRejectedResult).reason));
    const results = done
      .slice(0, slashes.length)
      .map((d) => (d as PromiseFulfilledResult<Awaited<ReturnType<typeof n.slash>>>).value);
    const byLease = new Map<string, Set<string | null>>();
    results.forEach((r, i) => {
      const lease = String(Math.floor(i / 3));
      byLease.set(lease, (byLease.get(lease) ?? new Set()).add(r.transactionId));
    });
    for (const [lease, ids] of byLease) assert.equal(ids.size, 1, `lease ${lease} slashed once`);
    const once = [...byLease.keys()].map((lease) => results[Number(lease) * 3]!);

    // Every unit is kept: what the stakes lost is what the slashes took, in TDM; the consumer got
    // each slash's credit; nothing was staked below zero (the escrow guard would have refused).
    const stakeTaken = once.reduce((sum, r) => sum + r.stakeTaken, 0n);
    const fromStake = once.reduce((sum, r) => sum + r.fromStake, 0n);
    for (const r of once) {
      assert.equal(r.fromStake + r.fromEarnings + r.shortfall, r.owed);
      // 2 TDM per USDC; an odd last unit of TDM stays with the network.
      assert.ok(r.stakeTaken - 2n * r.fromStake <= 1n && r.stakeTaken >= 2n * r.fromStake);
    }
    assert.ok(stakeTaken > 0n);
    const view = await n.tc.client().nodeStake(n.nodeId);
    const delegatorTdm = money((await balance(n.tc, n.delegator.apiKey, "TDM")).wallet);
    const supplierTdm = money((await balance(n.tc, n.supplier.apiKey, "TDM")).wallet);
    // 200 TDM in: the wallets, the stake left and what the slashes took account for all of it.
    assert.equal(
      formatMoney(units(delegatorTdm + supplierTdm + money(view.staked) + stakeTaken)),
      "200.000000",
    );
    // The withdrawal paid what its position held when it ran: 10 TDM less any slashes before it.
    const withdrawn = delegatorTdm - money("15");
    assert.ok(withdrawn >= 0n && withdrawn <= money("10"), `withdrew ${withdrawn}`);
    assert.equal(
      (await balance(n.tc, n.consumer.apiKey, "USDC")).wallet,
      formatMoney(units(money("1000") + fromStake)),
    );
    const audit = await n.admin.ledgerAudit();
    assert.equal(audit.ok, true, JSON.stringify(audit));
  });
});
