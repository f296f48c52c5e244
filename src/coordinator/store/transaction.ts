import type { Kysely, Transaction } from "kysely";
import type { Database } from "./schema.ts";
import { isSerializationFailure } from "./sql-errors.ts";

declare const inTransaction: unique symbol;

/**
 * A handle inside a database transaction. Only `runInTransaction` makes one, so a function that
 * takes a `Tx` cannot be handed the pool by mistake: what it writes commits or rolls back with
 * the rest of its business operation (STYLE.md "one DB transaction per business operation").
 */
export type Tx = Transaction<Database> & { readonly [inTransaction]: true };

/** Most runs of one transaction: the first, then reruns after a serialization failure. */
const MAX_RUNS = 5;

/**
 * Runs `work` in one transaction; after a serialization failure or a deadlock (PostgreSQL gave
 * up on it for running into another) the whole of `work` runs again, up to 5 runs in all, so
 * `work` must keep its results in what it returns, not in variables outside it. `retryOn` adds
 * errors worth a rerun (a lost race on an idempotency key: the rerun reads the winner's result).
 */
export async function runInTransaction<T>(
  db: Kysely<Database>,
  work: (tx: Tx) => Promise<T>,
  retryOn: (error: unknown) => boolean = () => false,
): Promise<T> {
  for (let run = 1; ; run++) {
    try {
      return await db.transaction().execute((tx) => work(tx as Tx));
    } catch (error) {
      if (run >= MAX_RUNS || !(isSerializationFailure(error) || retryOn(error))) throw error;
    }
  }
}
