/**
 * The database's own guard (migration 0003-ledger), exercised with raw SQL that bypasses the
 * billing code: every refusal must come from SQLite or PostgreSQL themselves.
 */
import assert from "node:assert/strict";
import type { TestContext } from "node:test";
import { test } from "node:test";
import { sql, type Kysely } from "kysely";
import { forEachDatabase, type DatabaseUnderTest } from "../../../test/support/coordinator.ts";
import type { Database } from "../store/schema.ts";

/** Raw SQL against the guard: any handle (these tests bypass the ledger on purpose). */
type Db = Kysely<Database>;

const ALICE = "wallet:acct_0000000000aaaaaaaaaaaaaaaa";
const BOB = "wallet:acct_0000000000bbbbbbbbbbbbbbbb";
const EXTERNAL = "external:manual";
let counter = 0;
const txId = () => `tx_${String(++counter).padStart(26, "0")}`;

interface RawPosting {
  account: string;
  currency?: string;
  amount: bigint;
  leg?: string;
}

/** A transaction's postings in one INSERT statement, as the ledger writes them. */
async function insertPostings(db: Db, id: string, postings: readonly RawPosting[]): Promise<void> {
  await db
    .insertInto("ledger_postings")
    .values(
      postings.map((p) => ({
        transaction_id: id,
        account: p.account,
        currency: p.currency ?? "USDC",
        amount: p.amount,
        leg: p.leg ?? "test",
      })),
    )
    .execute();
}

async function insertHeader(db: Db, id: string): Promise<void> {
  await db
    .insertInto("ledger_transactions")
    .values({
      id,
      idempotency_key: `raw:${id}`,
      kind: "test",
      request_hash: "-",
      account_id: null,
      cluster_id: null,
      lease_id: null,
      served_minutes: null,
      metadata: "{}",
      response: "{}",
      created_at: 0,
    })
    .execute();
}

/** One raw ledger transaction in one DB transaction: postings, then (optionally) its row. */
function rawTransaction(db: Db, postings: readonly RawPosting[], { header = true } = {}) {
  return db.transaction().execute(async (tx) => {
    const id = txId();
    await insertPostings(tx, id, postings);
    if (header) await insertHeader(tx, id);
    return id;
  });
}

async function balances(db: Db) {
  const rows = await db
    .selectFrom("ledger_balances")
    .select(["account", "currency", sql<string>`CAST(balance AS TEXT)`.as("balance")])
    .orderBy("account")
    .orderBy("currency")
    .execute();
  return rows.map((r) => `${r.account} ${r.currency} ${r.balance}`);
}

async function counts(db: Db) {
  const t = await db
    .selectFrom("ledger_transactions")
    .select(db.fn.countAll().as("n"))
    .executeTakeFirstOrThrow();
  const p = await db
    .selectFrom("ledger_postings")
    .select(db.fn.countAll().as("n"))
    .executeTakeFirstOrThrow();
  return { transactions: Number(t.n), postings: Number(p.n) };
}

async function fundedStore(db: DatabaseUnderTest, t: TestContext) {
  const store = await db.openStore();
  t.after(() => store.dispose());
  await rawTransaction(store.db, [
    { account: EXTERNAL, amount: -100n },
    { account: ALICE, amount: 100n },
  ]);
  return store;
}

const refused = (pattern: RegExp) => (error: unknown) => {
  assert.ok(error instanceof Error, String(error));
  assert.match(error.message, pattern);
  return true;
};

forEachDatabase("ledger database guard", (db) => {
  test("a balanced transaction is accepted and its guarded balances are derived", async (t) => {
    const store = await fundedStore(db, t);
    await rawTransaction(store.db, [
      { account: BOB, amount: 30n },
      { account: ALICE, amount: -30n },
      { account: EXTERNAL, currency: "TDM", amount: -5n },
      { account: BOB, currency: "TDM", amount: 5n },
    ]);
    assert.deepEqual(await balances(store.db), [
      `${ALICE} USDC 70`,
      `${BOB} TDM 5`,
      `${BOB} USDC 30`,
    ]);
    assert.deepEqual(await counts(store.db), { transactions: 2, postings: 6 });
  });

  test("refuses postings that do not sum to zero, per currency", async (t) => {
    const store = await fundedStore(db, t);
    const before = { counts: await counts(store.db), balances: await balances(store.db) };
    await assert.rejects(
      rawTransaction(store.db, [
        { account: BOB, amount: 30n },
        { account: ALICE, amount: -29n },
      ]),
      refused(/LEDGER_UNBALANCED/),
    );
    await assert.rejects(
      rawTransaction(store.db, [
        { account: BOB, amount: 30n },
        { account: ALICE, currency: "USDC", amount: -30n },
        { account: EXTERNAL, currency: "TDM", amount: 1n },
      ]),
      refused(/LEDGER_UNBALANCED/),
    );
    // Balanced overall but not per currency.
    await assert.rejects(
      rawTransaction(store.db, [
        { account: EXTERNAL, currency: "TDM", amount: -30n },
        { account: BOB, currency: "USDC", amount: 30n },
      ]),
      refused(/LEDGER_UNBALANCED/),
    );
    assert.deepEqual(
      { counts: await counts(store.db), balances: await balances(store.db) },
      before,
    );
  });

  test(
    "PostgreSQL checks each postings statement: a transaction's postings come in one",
    { skip: db.kind !== "postgres" && "SQLite checks the sums when the transaction row arrives" },
    async (t) => {
      const store = await fundedStore(db, t);
      const before = { counts: await counts(store.db), balances: await balances(store.db) };
      const split = store.db.transaction().execute(async (tx) => {
        const id = txId();
        await insertPostings(tx, id, [{ account: BOB, amount: 1n }]);
        await insertPostings(tx, id, [{ account: EXTERNAL, amount: -1n }]);
        await insertHeader(tx, id);
      });
      await assert.rejects(split, refused(/LEDGER_UNBALANCED: transaction tx_\w+ does not sum/));
      // Two transactions in one statement, each balanced: accepted.
      await store.db.transaction().execute(async (tx) => {
        const [a, b] = [txId(), txId()];
        await tx
          .insertInto("ledger_postings")
          .values([
            { transaction_id: a, account: BOB, currency: "USDC", amount: 2n, leg: "test" },
            { transaction_id: b, account: BOB, currency: "USDC", amount: 3n, leg: "test" },
            { transaction_id: a, account: EXTERNAL, currency: "USDC", amount: -2n, leg: "test" },
            { transaction_id: b, account: EXTERNAL, currency: "USDC", amount: -3n, leg: "test" },
          ])
          .execute();
        for (const id of [a, b]) await insertHeader(tx, id);
      });
      assert.deepEqual(await counts(store.db), {
        transactions: before.counts.transactions + 2,
        postings: before.counts.postings + 4,
      });
      assert.deepEqual(await balances(store.db), [...before.balances, `${BOB} USDC 5`]);
    },
  );

  test(
    "PostgreSQL's notes of posting batches are the triggers' own",
    { skip: db.kind !== "postgres" && "SQLite checks references with its foreign key" },
    async (t) => {
      const store = await fundedStore(db, t);
      await assert.rejects(
        sql`INSERT INTO ledger_posting_batches (first_posting_id, last_posting_id) VALUES (1, 1)`.execute(
          store.db,
        ),
        refused(/LEDGER_BATCH_INTERNAL/),
      );
      // An unrecorded posting in a later statement is found although an earlier one was fine.
      await assert.rejects(
        store.db.transaction().execute(async (tx) => {
          const id = txId();
          await insertPostings(tx, id, [
            { account: EXTERNAL, amount: -1n },
            { account: BOB, amount: 1n },
          ]);
          await insertHeader(tx, id);
          await insertPostings(tx, txId(), [
            { account: EXTERNAL, amount: -2n },
            { account: BOB, amount: 2n },
          ]);
        }),
        refused(/LEDGER_UNRECORDED/),
      );
      const notes = await sql<{
        n: string;
      }>`SELECT COUNT(*) AS n FROM ledger_posting_batches`.execute(store.db);
      assert.equal(Number(notes.rows[0]!.n), 0, "each note is removed by its check");
    },
  );

  test("refuses a transaction without postings and postings without a transaction", async (t) => {
    const store = await fundedStore(db, t);
    const before = await counts(store.db);
    await assert.rejects(
      store.db.transaction().execute((tx) => insertHeader(tx, txId())),
      refused(/LEDGER_UNBALANCED/),
    );
    await assert.rejects(
      rawTransaction(
        store.db,
        [
          { account: EXTERNAL, amount: -1n },
          { account: BOB, amount: 1n },
        ],
        { header: false },
      ),
      refused(/FOREIGN KEY|LEDGER_UNRECORDED/),
    );
    assert.deepEqual(await counts(store.db), before);
  });

  test("refuses any overdraft of a wallet, escrow or earnings account", async (t) => {
    const store = await fundedStore(db, t);
    const before = await balances(store.db);
    for (const account of [
      ALICE,
      "escrow:clu_0000000000aaaaaaaaaaaaaaaa",
      "earnings:acct_0000000000aaaaaaaaaaaaaaaa",
    ]) {
      await assert.rejects(
        rawTransaction(store.db, [
          { account: EXTERNAL, amount: account === ALICE ? 101n : 1n },
          { account, amount: account === ALICE ? -101n : -1n },
        ]),
        refused(/LEDGER_OVERDRAFT/),
        account,
      );
    }
    // Unguarded accounts may go negative: the outside world, and a treasury paying out.
    await rawTransaction(store.db, [
      { account: "treasury", amount: -1n },
      { account: BOB, amount: 1n },
    ]);
    assert.deepEqual(await balances(store.db), [...before, `${BOB} USDC 1`]);
  });

  test("a posting cannot be added to a recorded transaction", async (t) => {
    const store = await fundedStore(db, t);
    const id = await rawTransaction(store.db, [
      { account: EXTERNAL, amount: -1n },
      { account: BOB, amount: 1n },
    ]);
    await assert.rejects(
      store.db.transaction().execute((tx) =>
        insertPostings(tx, id, [
          { account: EXTERNAL, amount: -1n },
          { account: BOB, amount: 1n },
        ]),
      ),
      refused(/LEDGER_SEALED/),
    );
  });

  test("postings and transactions are append-only", async (t) => {
    const store = await fundedStore(db, t);
    const before = { counts: await counts(store.db), balances: await balances(store.db) };
    await assert.rejects(
      store.db.updateTable("ledger_postings").set({ leg: "x" }).execute(),
      refused(/LEDGER_APPEND_ONLY/),
    );
    await assert.rejects(
      sql`UPDATE ledger_postings SET amount = amount * 2`.execute(store.db),
      refused(/LEDGER_APPEND_ONLY/),
    );
    await assert.rejects(
      store.db.deleteFrom("ledger_postings").execute(),
      refused(/LEDGER_APPEND_ONLY/),
    );
    await assert.rejects(
      store.db.updateTable("ledger_transactions").set({ kind: "x" }).execute(),
      refused(/LEDGER_APPEND_ONLY/),
    );
    await assert.rejects(
      store.db.deleteFrom("ledger_transactions").execute(),
      refused(/LEDGER_APPEND_ONLY/),
    );
    if (db.kind === "postgres")
      await assert.rejects(
        sql`TRUNCATE ledger_postings CASCADE`.execute(store.db),
        refused(/LEDGER_APPEND_ONLY/),
      );
    assert.deepEqual(
      { counts: await counts(store.db), balances: await balances(store.db) },
      before,
    );
  });

  test("the cached balances cannot be edited directly", async (t) => {
    const store = await fundedStore(db, t);
    const before = await balances(store.db);
    await assert.rejects(
      sql`UPDATE ledger_balances SET balance = balance + 1000`.execute(store.db),
      refused(/LEDGER_BALANCE_DERIVED/),
    );
    await assert.rejects(
      sql`UPDATE ledger_balances SET balance = balance + 100, last_posting_id = last_posting_id + 1`.execute(
        store.db,
      ),
      refused(/LEDGER_BALANCE_DERIVED/),
    );
    await assert.rejects(
      sql`INSERT INTO ledger_balances (account, currency, balance, last_posting_id)
          VALUES (${BOB}, 'USDC', 5, 1)`.execute(store.db),
      refused(/LEDGER_BALANCE_DERIVED/),
    );
    await assert.rejects(
      sql`DELETE FROM ledger_balances`.execute(store.db),
      refused(/LEDGER_BALANCE_DERIVED/),
    );
    assert.deepEqual(await balances(store.db), before);
  });

  test("refuses zero amounts, unknown currencies and unknown account kinds", async (t) => {
    const store = await fundedStore(db, t);
    const before = await counts(store.db);
    for (const postings of [
      [
        { account: EXTERNAL, amount: 0n },
        { account: BOB, amount: 0n },
      ],
      [
        { account: EXTERNAL, currency: "EUR", amount: -1n },
        { account: BOB, currency: "EUR", amount: 1n },
      ],
      [
        { account: EXTERNAL, amount: -1n },
        { account: "WALLET:acct_0000000000bbbbbbbbbbbbbbbb", amount: 1n },
      ],
      [
        { account: EXTERNAL, amount: -1n },
        { account: "piggy-bank", amount: 1n },
      ],
    ]) {
      await assert.rejects(rawTransaction(store.db, postings), refused(/CHECK|check constraint/i));
    }
    assert.deepEqual(await counts(store.db), before);
  });
});
