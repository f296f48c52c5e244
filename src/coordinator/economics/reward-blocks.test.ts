/**
 * Reward blocks over the real registry, lifecycle, stake and ledger code, on SQLite and PostgreSQL:
 * shares exact to the unit (figures worked out apart from the code, by hand from the rules in
 * DESIGN §6), each refusal reason, idempotency by hour, missed hours paid once, supply and audit.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { openBilling } from "../../../test/support/billing.ts";
import { forEachDatabase } from "../../../test/support/coordinator.ts";
import { RewardNetwork, hourStart } from "../../../test/support/reward-network.ts";
import { hourlyEmission } from "../../core/emission.ts";
import { units } from "../../core/money.ts";
import { ledgerAudit } from "../billing/audit.ts";
import { addNodeFlag } from "../registry/node-flags.ts";
import { inTransaction } from "../billing/ledger.ts";
import { tokenSupply } from "./supply.ts";

const HOUR0_EMISSION = 4_566_210_045n; // ⌊40,000,000 TDM / 8,760⌋ in units

forEachDatabase("reward blocks", (db) => {
  test("one block pays the hour's emission by capacity, commission, then pro rata; refusals say why", async (t) => {
    const h = await openBilling(db, t);
    const net = await RewardNetwork.open(h);
    const [a, b, x, y] = [
      await h.account(),
      await h.account(),
      await h.account(),
      await h.account(),
    ];
    const before = hourStart(0) - 60_000;
    const n1 = await net.node(a, "rtx4090", { onlineAtMs: before }); // 82.6 TFLOPS
    const n2 = await net.node(a, "cpu16", { onlineAtMs: before }); // 16 cores × 0.1
    const n3 = await net.node(b, "h100x8", { onlineAtMs: before }); // 8 × 67 TFLOPS
    const unverified = await net.node(b, "rtx4090", { onlineAtMs: before, verified: false });
    const late = await net.node(b, "rtx4090", { onlineAtMs: hourStart(0) + 1_800_000 });
    const thin = await net.node(a, "rtx4090", { onlineAtMs: before });
    const flagged = await net.node(a, "rtx4090", { onlineAtMs: before });
    const p1 = await net.stake(a, n1, "30");
    const p2 = await net.stake(x, n1, "10");
    const p3 = await net.stake(y, n2, "3");
    const p4 = await net.stake(b, n3, "50");
    const p5 = await net.stake(x, n3, "20");
    const p6 = await net.stake(y, n3, "30");
    for (const n of [unverified, late, flagged]) await net.stake(b, n, "10");
    await net.stake(a, thin, "4"); // below its 5 TDM minimum...
    const leaving = await net.stake(a, thin, "10"); // ...once this one unbonds
    await net.stakes.unstake({
      requestedBy: a,
      idempotencyKey: "u",
      stakeId: leaving,
      nowMs: before,
    });
    await net.stakes.setCommission({
      requestedBy: a,
      nodeId: n2,
      commissionBps: 2500,
      nowMs: before,
    });
    await net.stakes.setCommission({ requestedBy: b, nodeId: n3, commissionBps: 0, nowMs: before });
    await inTransaction(h.store.db, (tx) => addNodeFlag(tx, flagged, "test-flag", {}, before));
    const walletA = await net.tdm(`wallet:${a}`);

    const [outcome] = await net.blocks().payDue(hourStart(1) + 1);
    assert.equal(hourlyEmission(0), units(HOUR0_EMISSION));
    assert.deepEqual(
      [outcome?.hour, outcome?.minted, outcome?.nominated, outcome?.rewarded],
      [0, HOUR0_EMISSION, 7, 3],
    );
    // Shares by capacity 82,600 : 1,600 : 536,000 milli-TFLOPS, largest remainders.
    const expected: Array<[string, bigint]> = [
      [`wallet:${a}`, walletA + 60_814_084n + 2_944_992n], // n1 10 %, n2 25 %
      [`escrow:clu_stake:${p1}`, 30_000_000n + 410_495_068n],
      [`escrow:clu_stake:${p2}`, 10_000_000n + 136_831_689n],
      [`escrow:clu_stake:${p3}`, 3_000_000n + 8_834_976n],
      [`escrow:clu_stake:${p4}`, 50_000_000n + 1_973_144_618n], // n3 0 %
      [`escrow:clu_stake:${p5}`, 20_000_000n + 789_257_847n],
      [`escrow:clu_stake:${p6}`, 30_000_000n + 1_183_886_771n],
      [`escrow:clu_stake:${leaving}`, 10_000_000n], // unbonding earns nothing
      ["escrow:clu_block:0", 0n],
    ];
    for (const [account, amount] of expected) assert.equal(await net.tdm(account), amount, account);
    const rows = await h.store.db
      .selectFrom("reward_block_nodes")
      .select(["node_id", "reason"])
      .where("hour", "=", 0)
      .execute();
    const reasons = new Map(rows.map((r) => [r.node_id, r.reason]));
    assert.deepEqual(
      [n1, n2, n3, unverified, late, thin, flagged].map((n) => reasons.get(n)),
      [null, null, null, "not-verified", "not-online-all-hour", "stake-below-minimum", "flagged"],
    );
    const supply = await tokenSupply(h.store.db);
    assert.equal(supply.emitted, HOUR0_EMISSION);
    assert.equal(supply.totalSupply, supply.genesis + HOUR0_EMISSION - supply.burned);
    const audit = await ledgerAudit(h.store.db);
    assert.ok(audit.ok, JSON.stringify(audit));

    // The same hour again: nothing written.
    const counts = await h.counts();
    const again = await net.blocks().pay(0, hourStart(1) + 2);
    assert.equal(again.made, false);
    assert.deepEqual(await h.counts(), counts);
  });

  test("missed hours are paid once each, oldest first; an hour without eligible nodes mints nothing", async (t) => {
    const h = await openBilling(db, t);
    const net = await RewardNetwork.open(h);
    const a = await h.account();
    // Online from the middle of hour 1: hours 0 and 1 have no eligible node.
    const n = await net.node(a, "rtx4090", { onlineAtMs: hourStart(1) + 60_000 });
    const p = await net.stake(a, n, "5");
    const blocks = net.blocks({ maxBlocksPerRun: 3, batch: 10 });
    // The coordinator was down until hour 5 began: hours 0..4 are due, 3 a run.
    const first = await blocks.payDue(hourStart(5) + 10);
    assert.deepEqual(
      first.map((o) => [o.hour, o.minted]),
      [
        [0, 0n],
        [1, 0n],
        [2, hourlyEmission(2)],
      ],
    );
    const second = await blocks.payDue(hourStart(5) + 20);
    assert.deepEqual(
      second.map((o) => o.hour),
      [3, 4],
    );
    assert.deepEqual(await blocks.payDue(hourStart(5) + 30), []);
    const paid = hourlyEmission(2) + hourlyEmission(3) + hourlyEmission(4);
    assert.equal((await tokenSupply(h.store.db)).emitted, paid);
    // The whole of three hours to the node: 10 % commission each hour, the rest to its one stake.
    const commission = (e: bigint) => (e * 1000n) / 10_000n;
    const rest = [2, 3, 4].reduce(
      (s, hr) => s + hourlyEmission(hr) - commission(hourlyEmission(hr)),
      0n,
    );
    assert.equal(await net.tdm(`escrow:clu_stake:${p}`), 5_000_000n + rest);
    const audit = await ledgerAudit(h.store.db);
    assert.ok(audit.ok, JSON.stringify(audit));
  });
});
