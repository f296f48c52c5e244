/**
 * The posting engine's own writes: what goes in comes back exactly, whatever the text holds, and a
 * batch of many transactions is recorded whole (PostgreSQL gets it as pipelined inserts of JSON
 * arrays, one a column).
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { sql } from "kysely";
import { forEachDatabase } from "../../../test/support/coordinator.ts";
import { units } from "../../core/money.ts";
import { ledgerAudit } from "./audit.ts";
import { Leg, TransactionKind, externalAccount, walletAccount } from "./ledger-accounts.ts";
import { Ledger, inTransaction, requestHash, type RecordInput } from "./ledger.ts";

const NOW = Date.UTC(2025, 0, 1);

/** Text an encoding of lists (JSON arrays, array literals) or SQL strings could get wrong. */
const AWKWARD = [
  'a "quoted" word',
  "back\\slash and \\\\ two",
  "{braces, commas}",
  "NULL",
  "",
  "new\nline\ttab",
  "ünïcødé ✓",
  "'single'",
  "\u0007 bell, \u001f unit separator, 😀 outside the BMP",
  '["json", "looking"]',
];

function deposit(i: number, note: string): RecordInput {
  return {
    idempotencyKey: `test:${i}`,
    kind: TransactionKind.DEPOSIT,
    requestHash: `hash ${note}`,
    accountId: `acct_${i}`,
    metadata: { note },
    response: (id) => ({ id, note }),
    nowMs: NOW + i,
    postings: [
      {
        account: externalAccount("manual"),
        currency: "USDC",
        amount: units(-(i + 1)),
        leg: Leg.DEPOSIT,
      },
      {
        account: walletAccount(`acct_${i}`),
        currency: "USDC",
        amount: units(i + 1),
        leg: Leg.DEPOSIT,
      },
    ],
  };
}

forEachDatabase("ledger writes", (db) => {
  test("text with quotes, backslashes, braces and NULL round-trips exactly", async (t) => {
    const store = await db.openStore();
    t.after(() => store.dispose());
    const ledger = new Ledger(store.dialect);
    const inputs = AWKWARD.map((note, i) => deposit(i, note));
    const written = await inTransaction(store.db, (tx) => ledger.recordMany(tx, inputs));
    for (const [i, note] of AWKWARD.entries()) {
      const row = await store.db
        .selectFrom("ledger_transactions")
        .select(["id", "request_hash", "metadata", "response", "account_id"])
        .where("idempotency_key", "=", `test:${i}`)
        .executeTakeFirstOrThrow();
      assert.equal(row.id, written[i]!.id);
      assert.equal(row.request_hash, `hash ${note}`);
      assert.equal(row.account_id, `acct_${i}`);
      // The very text the ledger wrote (on PostgreSQL it travels inside a JSON array).
      assert.equal(row.metadata, JSON.stringify({ note }));
      assert.equal(row.response, JSON.stringify({ id: row.id, note }));
    }
  });

  test("a batch larger than one pipelined insert is recorded whole, or not at all", async (t) => {
    const store = await db.openStore();
    t.after(() => store.dispose());
    const ledger = new Ledger(store.dialect);
    const n = 2_500; // three batches of up to 1,000 transactions
    await inTransaction(store.db, (tx) =>
      ledger.recordMany(
        tx,
        Array.from({ length: n }, (_, i) => deposit(i, `n${i}`)),
      ),
    );
    const count = async () =>
      Number(
        (
          await sql<{ n: number | string }>`SELECT COUNT(*) AS n FROM ledger_postings`.execute(
            store.db,
          )
        ).rows[0]!.n,
      );
    assert.equal(await count(), 2 * n);
    // A failure in the last batch (a key already used) rolls back the batches sent before it.
    const again = Array.from({ length: n }, (_, i) => deposit(n + i, "again"));
    again[n - 1] = deposit(0, "reused key");
    await assert.rejects(inTransaction(store.db, (tx) => ledger.recordMany(tx, again)));
    assert.equal(await count(), 2 * n);
    const audit = await ledgerAudit(store.db);
    assert.equal(audit.ok, true);
    assert.equal(audit.transactions, n);
  });
});

test("request hashes stay what they were: stored ones are compared on every replay", () => {
  // Fields in any order, undefined ones left out, bigints as decimal strings, nested values too.
  const request = {
    supplierAccountId: "acct_y",
    servedMinutes: 60,
    pricePerHour: 1_234_567n,
    nested: { c: true, b: [1n, "x", null], a: undefined },
    leaseId: "l",
    currency: "USDC",
    clusterId: "clu_x",
  };
  const expected = "6edfdb781953069a98542997434855fe9d498fcb6e05ade11be0a3cc72f6aacc";
  assert.equal(requestHash(TransactionKind.SETTLEMENT, request), expected);
  assert.equal(requestHash(TransactionKind.SETTLEMENT, { ...request, extra: undefined }), expected);
  assert.notEqual(requestHash(TransactionKind.SLASH, request), expected);
});
