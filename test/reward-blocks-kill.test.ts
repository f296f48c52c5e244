/**
 * kill -9 mid-block, on SQLite and PostgreSQL: a process making hour 0's reward block is SIGKILLed
 * after it wrote some of the block's payouts (its DB transaction open); the coordinator then comes
 * back on the same database and its leader pays hour 0 exactly once: one block, the hour's
 * emission minted once, every position credited once, the ledger audit clean.
 */
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { join } from "node:path";
import { test } from "node:test";
import { sql } from "kysely";
import { ledgerAudit } from "../src/coordinator/billing/audit.ts";
import { tokenSupply } from "../src/coordinator/economics/supply.ts";
import { hourlyEmission } from "../src/core/emission.ts";
import { money, units } from "../src/core/money.ts";
import type { BillingHarness } from "./support/billing.ts";
import { ManualClock, forEachDatabase, type TestCoordinator } from "./support/coordinator.ts";
import { GENESIS_MS, RewardNetwork, hourStart } from "./support/reward-network.ts";

const CHILD = join(import.meta.dirname, "support", "reward-block-child.ts");

/** The harness RewardNetwork needs, over a running test coordinator's store and API. */
function harnessOf(tc: TestCoordinator): BillingHarness {
  const store = tc.coordinator.store;
  const admin = tc.client(tc.adminKey);
  return {
    store: { ...store, dispose: () => Promise.resolve() },
    async account() {
      return (await tc.signUp(["consumer", "supplier"])).accountId;
    },
    async fund(accountId, currency, amount) {
      const whole = `${amount / 1_000_000n}.${String(amount % 1_000_000n).padStart(6, "0")}`;
      await admin.deposit({ accountId, currency, amount: whole });
    },
    async balanceOf(account, currency) {
      const { rows } = await sql<{ total: string | null }>`
        SELECT CAST(SUM(amount) AS TEXT) AS total FROM ledger_postings
        WHERE account = ${account} AND currency = ${currency}`.execute(store.db);
      return units(rows[0]?.total ?? 0);
    },
  } as BillingHarness;
}

/** Runs the child until its first progress line, then SIGKILLs it; answers the lines it wrote. */
function killMidBlock(where: string): Promise<string[]> {
  const child = spawn(
    process.execPath,
    ["--import", "tsx", CHILD, where, String(GENESIS_MS), "0"],
    {
      stdio: ["ignore", "pipe", "inherit"],
    },
  );
  const lines: string[] = [];
  return new Promise((resolve, reject) => {
    child.stdout.setEncoding("utf8").on("data", (chunk: string) => {
      lines.push(...chunk.split("\n").filter((l) => l !== ""));
      if (lines.some((l) => l.startsWith("progress 2"))) child.kill("SIGKILL");
    });
    child.on("error", reject);
    child.on("exit", (_code, signal) => {
      if (signal === "SIGKILL") resolve(lines);
      else reject(new Error(`the child ended without being killed: ${lines.join(" | ")}`));
    });
  });
}

forEachDatabase("reward block kill -9", (db) => {
  test("a block cut by SIGKILL leaves nothing; the coordinator back pays the hour once", async (t) => {
    const clock = new ManualClock(GENESIS_MS - 600_000);
    let tc = await db.startCoordinator({
      clock,
      config: { genesisAtMs: GENESIS_MS, rewardBlockCheckMs: 100 },
    });
    t.after(() => tc.close());
    const h = harnessOf(tc);
    const net = new RewardNetwork(h);
    const owner = await h.account();
    const positions: string[] = [];
    for (let i = 0; i < 6; i++) {
      const node = await net.node(owner, "h100x8", { onlineAtMs: GENESIS_MS - 300_000 });
      // 8 × 1,000 TDM: the default minimum of 8 data-center GPUs.
      positions.push(await net.stake(owner, node, "8000"));
    }
    const counts = async () =>
      (
        await sql<{ n: string }>`SELECT CAST(COUNT(*) AS TEXT) AS n FROM ledger_postings`.execute(
          tc.coordinator.store.db,
        )
      ).rows[0]?.n;
    const before = await counts();
    const where = tc.databaseUrl ?? join(tc.home, "coordinator.db");
    await tc.coordinator.close();

    const lines = await killMidBlock(where);
    assert.ok(lines.includes("progress 2") && !lines.includes("done"), lines.join(" | "));

    clock.set(hourStart(1) + 1_000);
    tc = await tc.restart();
    for (let i = 0; i < 200 && (await tc.client().rewardBlocks()).items.length === 0; i++)
      await new Promise((resolve) => setTimeout(resolve, 50));
    await new Promise((resolve) => setTimeout(resolve, 300));
    const blocks = (await tc.client().rewardBlocks()).items;
    assert.deepEqual(
      blocks.map((b) => [b.hour, b.rewarded]),
      [[0, 6]],
    );
    const supply = await tokenSupply(tc.coordinator.store.db);
    assert.equal(supply.emitted, hourlyEmission(0));
    // Six equal nodes: shares of 761,035,008 or 761,035,007 units, each 10 % (76,103,500 rounded
    // down) to the supplier; its one position takes the rest.
    const rest = hourlyEmission(0) - 6n * 76_103_500n;
    const again = harnessOf(tc);
    let credited = 0n;
    for (const p of positions)
      credited += (await again.balanceOf(`escrow:clu_stake:${p}`, "TDM")) - money("8000");
    assert.equal(credited, rest);
    // Mint (2) + per node: block debit, commission, one position = 2 + 6 × 3 postings.
    assert.equal(Number(await counts()) - Number(before), 2 + 6 * 3);
    const audit = await ledgerAudit(tc.coordinator.store.db);
    assert.ok(audit.ok, JSON.stringify(audit));
  });
});
