import assert from "node:assert/strict";
import { it } from "node:test";
import { sql, type Kysely } from "kysely";
import { forEachDatabase } from "../../../test/support/coordinator.ts";
import type { Database } from "./schema.ts";
import { runInTransaction, type ReadDb, type Tx } from "./transaction.ts";

forEachDatabase("runInTransaction", (db) => {
  it("runs a transaction that lost a serialization race again, and both increments land", async (t) => {
    const store = await db.openStore();
    t.after(() => store.dispose());
    await sql`create table counter (id integer primary key, n integer not null)`.execute(store.db);
    await sql`insert into counter (id, n) values (1, 0)`.execute(store.db);
    let runs = 0;
    // On PostgreSQL both first runs read before either writes (a real serializable conflict: one
    // of them gets 40001); SQLite has one writer, so its transactions never overlap.
    const overlap = db.kind === "postgres";
    let arrive!: () => void;
    const bothRead = new Promise<void>((resolve) => {
      let count = 0;
      arrive = () => (++count === 2 ? resolve() : undefined);
    });
    const increment = () =>
      runInTransaction(
        store.db,
        async (tx) => {
          runs++;
          const row = await sql<{ n: number }>`select n from counter where id = 1`.execute(tx);
          if (overlap && runs <= 2) {
            arrive();
            await bothRead;
          }
          await sql`update counter set n = ${Number(row.rows[0]!.n) + 1} where id = 1`.execute(tx);
        },
        { isolation: "serializable" },
      );
    await Promise.all([increment(), increment()]);
    const final = await sql<{ n: number }>`select n from counter where id = 1`.execute(store.db);
    assert.equal(Number(final.rows[0]!.n), 2, "no increment lost");
    assert.equal(runs, overlap ? 3 : 2, "the loser ran once more");
  });

  it("gives up after five runs, and never reruns an error that is not a race", async (t) => {
    const store = await db.openStore();
    t.after(() => store.dispose());
    let runs = 0;
    // The error PostgreSQL raises for a serialization failure (SQLSTATE 40001), thrown by the
    // work itself here so the count is exact.
    const raced = Object.assign(new Error("could not serialize access"), { code: "40001" });
    await assert.rejects(
      runInTransaction(store.db, () => {
        runs++;
        return Promise.reject(raced);
      }),
      raced,
    );
    assert.equal(runs, 5);
    runs = 0;
    const broken = new Error("a bug");
    await assert.rejects(
      runInTransaction(store.db, () => {
        runs++;
        return Promise.reject(broken);
      }),
      broken,
    );
    assert.equal(runs, 1);
  });
});

it("types: a route's read handle cannot write, and a pool handle is not a transaction", () => {
  // Checked by `npm run check` (tsc): each line below must stay a type error.
  const check = (read: ReadDb, pool: Kysely<Database>): Tx => {
    // @ts-expect-error: routes write through services, never the query builder
    const writes: unknown = read.updateTable;
    void writes;
    // @ts-expect-error: a pool handle is not a Tx
    return pool;
  };
  assert.equal(typeof check, "function");
});
