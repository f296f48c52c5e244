/**
 * Property test over the real billing, stake and supply code and database: random histories of
 * TDM deposits, stakes, unstakes, withdrawals (before and after the cooldown), replays and rentals
 * paid in TDM (whose 0.5 % burn destroys TDM) keep TDM's supply exact — total = genesis − burned
 * (nothing emitted yet), never above the maximum, `staked` = Σ the model's open positions — every
 * wallet equal to a simple model's, and the ledger audit clean.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import fc from "fast-check";
import { deployed, openBilling, type BillingHarness } from "../../../test/support/billing.ts";
import { forEachDatabase } from "../../../test/support/coordinator.ts";
import {
  fixtureHardware,
  newDeviceKey,
  signedRegistration,
} from "../../../test/support/devices.ts";
import { COMMUNITY_POOL, GENESIS_SUPPLY, MAX_SUPPLY } from "../../core/emission.ts";
import { TandemError } from "../../core/errors.ts";
import { formatMoney, neg, units, type Money } from "../../core/money.ts";
import { ledgerAudit } from "../billing/audit.ts";
import { Ledger, inTransaction } from "../billing/ledger.ts";
import { DeviceRegistry } from "../registry/devices.ts";
import { CoordinatorEvents } from "../events.ts";
import { DEFAULT_STAKE_OPTIONS, StakeService } from "./stakes.ts";
import { ensureGenesis, tokenSupply } from "./supply.ts";

const USERS = 3;
const NODES = 2;
const COOLDOWN_MS = 1000;
const user = fc.nat(USERS - 1);
const amount = fc.bigInt({ min: 1n, max: 50_000_000n });

type Op =
  | { t: "deposit"; user: number; amount: bigint }
  | { t: "stake"; user: number; node: number; amount: bigint }
  | { t: "unstake"; stake: number }
  | { t: "withdraw"; stake: number; wait: boolean }
  | { t: "replay" }
  | { t: "rent"; minutes: number; price: bigint };

const op: fc.Arbitrary<Op> = fc.oneof(
  fc.record({ t: fc.constant("deposit" as const), user, amount }),
  fc.record({ t: fc.constant("stake" as const), user, node: fc.nat(NODES - 1), amount }),
  fc.record({ t: fc.constant("unstake" as const), stake: fc.nat(20) }),
  fc.record({ t: fc.constant("withdraw" as const), stake: fc.nat(20), wait: fc.boolean() }),
  fc.record({ t: fc.constant("replay" as const) }),
  fc.record({
    t: fc.constant("rent" as const),
    minutes: fc.integer({ min: 1, max: 600 }),
    price: fc.bigInt({ min: 1_000_000n, max: 20_000_000n }),
  }),
);

interface Position {
  id: string;
  user: number;
  amount: bigint;
  status: "active" | "unbonding" | "withdrawn";
  withdrawableAt: number;
}

/** One history on a ledger that earlier runs used too: supply figures are compared as deltas. */
async function run(h: BillingHarness, stakes: StakeService, nodes: string[], ops: Op[]) {
  const base = await tokenSupply(h.store.db);
  const users = await Promise.all(Array.from({ length: USERS }, () => h.account()));
  const wallet = users.map(() => 0n);
  const positions: Position[] = [];
  let burned = 0n;
  let changes = 0;
  let now = Date.UTC(2025, 0, 1);
  let key = 0;
  let last: { user: number; node: number; amount: bigint; key: string } | undefined;
  const refused = (e: unknown) => {
    if (!(e instanceof TandemError) || e.code === "INTERNAL") throw e;
  };
  for (const o of ops) {
    now += 1;
    switch (o.t) {
      case "deposit":
        await h.fund(users[o.user]!, "TDM", units(o.amount));
        wallet[o.user]! += o.amount;
        break;
      case "stake":
      case "replay": {
        const s =
          o.t === "stake"
            ? { user: o.user, node: o.node, amount: o.amount, key: `s${++key}` }
            : last;
        if (s === undefined) break;
        const fits =
          s.amount >= DEFAULT_STAKE_OPTIONS.minStakeAmount && wallet[s.user]! >= s.amount;
        try {
          const answer = await stakes.stake({
            requestedBy: users[s.user]!,
            idempotencyKey: s.key,
            nodeId: nodes[s.node]!,
            amount: units(s.amount),
            nowMs: now,
          });
          if (!answer.replayed) {
            assert.ok(fits, "a stake the model refuses was accepted");
            wallet[s.user]! -= s.amount;
            changes += 1;
            positions.push({
              id: answer.body.id,
              user: s.user,
              amount: s.amount,
              status: "active",
              withdrawableAt: 0,
            });
          } else assert.equal(o.t, "replay");
        } catch (e) {
          refused(e);
          assert.ok(
            !fits || o.t === "replay",
            `a stake the model accepts was refused: ${String(e)}`,
          );
        }
        if (o.t === "stake") last = s;
        break;
      }
      case "unstake": {
        const p = positions[o.stake];
        if (p === undefined) break;
        try {
          await stakes.unstake({
            requestedBy: users[p.user]!,
            idempotencyKey: `u${++key}`,
            stakeId: p.id,
            nowMs: now,
          });
          assert.equal(p.status, "active");
          p.status = "unbonding";
          changes += 1;
          p.withdrawableAt = now + COOLDOWN_MS;
        } catch (e) {
          refused(e);
          assert.notEqual(p.status, "active");
        }
        break;
      }
      case "withdraw": {
        const p = positions[o.stake];
        if (p === undefined) break;
        if (o.wait) now += COOLDOWN_MS;
        try {
          await stakes.withdraw({
            requestedBy: users[p.user]!,
            idempotencyKey: `w${++key}`,
            stakeId: p.id,
            nowMs: now,
          });
          assert.ok(p.status === "unbonding" && now >= p.withdrawableAt);
          p.status = "withdrawn";
          changes += 1;
          wallet[p.user]! += p.amount;
        } catch (e) {
          refused(e);
          assert.ok(p.status !== "unbonding" || now < p.withdrawableAt);
        }
        break;
      }
      case "rent": {
        const price = formatMoney(units(o.price));
        const rental = await deployed(h, { currency: "TDM", price, minutes: o.minutes });
        const settled = await h.billing.transaction((tx) =>
          h.billing.settleLease(tx, rental.lease(0, o.minutes)),
        );
        assert.ok(settled.ok);
        burned += settled.released.burn;
        break;
      }
    }
  }

  const open = positions.filter((p) => p.status !== "withdrawn");
  const supply = await tokenSupply(h.store.db);
  assert.equal(supply.genesis, GENESIS_SUPPLY);
  assert.equal(supply.emitted, 0n);
  assert.equal(supply.burned - base.burned, burned);
  assert.equal(supply.totalSupply, GENESIS_SUPPLY - supply.burned);
  assert.ok(supply.totalSupply <= MAX_SUPPLY);
  assert.equal(
    supply.staked - base.staked,
    open.reduce((a, p) => a + p.amount, 0n),
  );
  for (const [i, id] of users.entries())
    assert.equal(await h.balanceOf(`wallet:${id}`, "TDM"), wallet[i] as Money, `wallet ${i}`);
  const audit = await ledgerAudit(h.store.db);
  assert.ok(audit.ok, JSON.stringify(audit));
  return changes;
}

forEachDatabase("TDM supply properties", (db) => {
  test("random stakes, unstakes, withdrawals and TDM rentals keep the supply and every wallet exact", async (t) => {
    const h = await openBilling(db, t);
    const ledger = new Ledger(h.store.dialect);
    await ensureGenesis(h.store.db, ledger, Date.UTC(2025, 0, 1));
    await ensureGenesis(h.store.db, ledger, Date.UTC(2025, 0, 2));
    const events = new CoordinatorEvents();
    let published = 0;
    events.on("node:stake", () => (published += 1));
    const stakes = new StakeService(h.store.db, ledger, events, {
      ...DEFAULT_STAKE_OPTIONS,
      cooldownMs: COOLDOWN_MS,
    });
    const devices = new DeviceRegistry(h.store.db, events);
    const owner = await h.account(["supplier"]);
    const hardware = await fixtureHardware("rtx4090");
    const nodes: string[] = [];
    for (let i = 0; i < NODES; i++) {
      const registration = signedRegistration(newDeviceKey(), {
        region: "eu-west",
        zone: "eu-west-a",
        hardware,
      });
      nodes.push((await devices.register(owner, registration, Date.now())).nodeId);
    }
    await fc.assert(
      fc.asyncProperty(fc.array(op, { minLength: 1, maxLength: 30 }), async (ops) => {
        published = 0;
        const changes = await run(h, stakes, nodes, ops);
        // One `node:stake` event per change that committed, none for a refusal or a replay.
        assert.equal(published, changes);
      }),
      { numRuns: db.kind === "postgres" ? 15 : 40 },
    );
  });

  test("the audit refuses a supply beyond its bounds: emission above the community pool", async (t) => {
    const h = await openBilling(db, t);
    const ledger = new Ledger(h.store.dialect);
    await ensureGenesis(h.store.db, ledger, Date.UTC(2025, 0, 1));
    const clean = await ledgerAudit(h.store.db);
    assert.equal(clean.ok, true, JSON.stringify(clean));
    assert.deepEqual(
      [clean.supply.genesis, clean.supply.totalSupply, clean.supply.problems],
      ["500000000.000000", "500000000.000000", []],
    );
    const holder = await h.account();
    const tooMuch = units(COMMUNITY_POOL + 1n);
    await inTransaction(h.store.db, (tx) =>
      ledger.record(tx, {
        idempotencyKey: "rogue-emission",
        kind: "genesis",
        requestHash: "x",
        metadata: {},
        response: () => ({}),
        nowMs: Date.UTC(2025, 0, 1),
        postings: [
          { account: "emission-pool", currency: "TDM", amount: neg(tooMuch), leg: "emission" },
          { account: `wallet:${holder}`, currency: "TDM", amount: tooMuch, leg: "emission" },
        ],
      }),
    );
    const broken = await ledgerAudit(h.store.db);
    assert.equal(broken.ok, false);
    assert.deepEqual(broken.supply.problems, [
      "emitted 300000000.000001 exceeds 300000000.000000",
      "total supply exceeds the maximum 800000000.000000",
    ]);
    // Conservation still holds: minting is internal to the ledger.
    assert.ok(broken.currencies.every((c) => c.conserved));
  });
});
