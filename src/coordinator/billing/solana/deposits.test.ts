/**
 * Deposits on the Solana rail, against a real Solana VM (LiteSVM) behind the chain port: real SPL
 * transfers into derived deposit addresses, credited once by the watcher.
 */
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { test, type TestContext } from "node:test";
import { openBilling } from "../../../../test/support/billing.ts";
import { forEachDatabase, type DatabaseUnderTest } from "../../../../test/support/coordinator.ts";
import { LiteSvmChain, SplFixture } from "../../../../test/support/litesvm-chain.ts";
import { units } from "../../../core/money.ts";
import { ledgerAudit } from "../audit.ts";
import { externalAccount, walletAccount } from "../ledger-accounts.ts";
import { Ledger } from "../ledger.ts";
import { DepositAddresses } from "./deposit-addresses.ts";
import { DepositWatcher, RefusalReason, SOLANA_RAIL } from "./deposit-watcher.ts";

const NOW = Date.UTC(2026, 11, 8);

async function setUp(db: DatabaseUnderTest, t: TestContext) {
  const h = await openBilling(db, t);
  const chain = new LiteSvmChain();
  const spl = new SplFixture(chain);
  const mints = { USDC: await spl.mint(), TDM: await spl.mint() };
  const treasurySecret = randomBytes(32);
  const addresses = new DepositAddresses(h.store.db, { treasurySecret, mints });
  const watcher = () =>
    new DepositWatcher(
      {
        db: h.store.db,
        ledger: new Ledger(h.store.dialect),
        chain,
        addresses,
        clock: { now: () => NOW },
      },
      { commitment: "finalized", mints, minimumUnits: { USDC: 10_000n } },
    );
  return { h, chain, spl, mints, treasurySecret, addresses, watcher };
}

async function deposits(h: Awaited<ReturnType<typeof openBilling>>) {
  return await h.store.db
    .selectFrom("solana_deposits")
    .select(["signature", "currency", "amount", "reason", "transaction_id"])
    .orderBy("slot")
    .execute();
}

forEachDatabase("Solana deposits", (db) => {
  test("a deposit address is stable per account and mint, and differs across both", async (t) => {
    const { h, addresses, mints, treasurySecret } = await setUp(db, t);
    const [a, b] = [await h.account(), await h.account()];
    const usdc = await addresses.addressFor(a, "USDC", NOW);
    assert.deepEqual(await addresses.addressFor(a, "USDC", NOW + 1), usdc);
    // A new service over the same secret (a restart) derives the same owner, hence the same address.
    const again = new DepositAddresses(h.store.db, { treasurySecret, mints });
    assert.equal((await again.addressFor(a, "USDC", NOW)).address, usdc.address);
    const tdm = await addresses.addressFor(a, "TDM", NOW);
    const other = await addresses.addressFor(b, "USDC", NOW);
    assert.equal(tdm.owner, usdc.owner);
    assert.notEqual(tdm.address, usdc.address);
    assert.notEqual(other.owner, usdc.owner);
    assert.notEqual(other.address, usdc.address);
    await assert.rejects(addresses.addressFor(a, "USD", NOW), { code: "UNKNOWN_CURRENCY" });
  });

  test("an SPL transfer is credited once, with its signature, across watcher restarts", async (t) => {
    const { h, spl, mints, addresses, watcher } = await setUp(db, t);
    const account = await h.account();
    const to = await addresses.addressFor(account, "USDC", NOW);
    const payer = await spl.holder(mints.USDC, 100_000_000n);
    const signature = await spl.pay(payer, mints.USDC, to.owner, 25_500_000n);

    assert.deepEqual(await watcher().scan(), { credited: 1, refused: 0 });
    assert.equal(await h.balanceOf(walletAccount(account), "USDC"), units(25_500_000n));
    const counts = await h.counts();
    // A second pass, a restarted watcher, and one that lost its cursor: nothing more.
    assert.deepEqual(await watcher().scan(), { credited: 0, refused: 0 });
    await h.store.db.deleteFrom("solana_watch_cursors").execute();
    assert.deepEqual(await watcher().scan(), { credited: 0, refused: 0 });
    assert.deepEqual(await h.counts(), counts);
    assert.equal(await h.balanceOf(walletAccount(account), "USDC"), units(25_500_000n));
    assert.equal(await h.balanceOf(externalAccount(SOLANA_RAIL), "USDC"), units(-25_500_000n));

    const rows = await deposits(h);
    assert.equal(rows.length, 1);
    assert.equal(rows[0]!.signature, signature);
    const history = await h.wallet.history(account, { limit: 10 });
    assert.equal(history.items.length, 1);
    assert.equal(history.items[0]!.id, rows[0]!.transaction_id);
    assert.equal(history.items[0]!.railReference, signature);
    assert.ok((await ledgerAudit(h.store.db)).ok);
  });

  test("a transfer not yet finalized is credited only once it is", async (t) => {
    const { h, chain, spl, mints, addresses, watcher } = await setUp(db, t);
    const account = await h.account();
    const to = await addresses.addressFor(account, "TDM", NOW);
    const payer = await spl.holder(mints.TDM, 10_000_000n);
    await spl.pay(payer, mints.TDM, to.owner, 3_000_000n);
    assert.deepEqual(await watcher().scan(), { credited: 1, refused: 0 });

    chain.holdFinality();
    await spl.pay(payer, mints.TDM, to.owner, 4_000_000n);
    assert.deepEqual(await watcher().scan(), { credited: 0, refused: 0 });
    assert.equal(await h.balanceOf(walletAccount(account), "TDM"), units(3_000_000n));

    chain.finalize();
    assert.deepEqual(await watcher().scan(), { credited: 1, refused: 0 });
    assert.equal(await h.balanceOf(walletAccount(account), "TDM"), units(7_000_000n));
    assert.ok((await ledgerAudit(h.store.db)).ok);
  });

  test("an unknown mint and a dust transfer are recorded, never credited", async (t) => {
    const { h, spl, mints, addresses, watcher } = await setUp(db, t);
    const account = await h.account();
    const to = await addresses.addressFor(account, "USDC", NOW);
    const stranger = await spl.mint();
    const strangerPayer = await spl.holder(stranger, 5_000_000n);
    const unknown = await spl.pay(strangerPayer, stranger, to.owner, 5_000_000n);
    const payer = await spl.holder(mints.USDC, 5_000_000n);
    const dust = await spl.pay(payer, mints.USDC, to.owner, 9_999n);

    assert.deepEqual(await watcher().scan(), { credited: 0, refused: 2 });
    assert.deepEqual(await watcher().scan(), { credited: 0, refused: 0 });
    const rows = await deposits(h);
    assert.deepEqual(
      rows.map((r) => [r.signature, r.currency, r.amount, r.reason, r.transaction_id]),
      [
        [unknown, null, "5000000", RefusalReason.UNKNOWN_MINT, null],
        [dust, "USDC", "9999", RefusalReason.BELOW_MINIMUM, null],
      ],
    );
    assert.equal(await h.balanceOf(walletAccount(account), "USDC"), units(0));
    assert.deepEqual(await h.counts(), { transactions: 0, postings: 0 });
    assert.ok((await ledgerAudit(h.store.db)).ok);
  });
});
