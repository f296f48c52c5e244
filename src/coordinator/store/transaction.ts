import type { IsolationLevel, Kysely, Transaction } from "kysely";
import type { Database } from "./schema.ts";
import { checkFence } from "./leader-fence.ts";
import { isSerializationFailure } from "./sql-errors.ts";

declare const inTransaction: unique symbol;

/**
 * A handle inside a database transaction. Only `runInTransaction` makes one, so a function that
 * takes a `Tx` cannot be handed the pool by mistake: what it writes commits or rolls back with
 * the rest of its business operation (STYLE.md "one DB transaction per business operation").
 */
export type Tx = Transaction<Database> & { readonly [inTransaction]: true };

/**
 * A handle that reads: what the API's routes get, so a route cannot write the store with the
 * query builder (every write goes through a service, inside its own transaction). A pool handle
 * and a `Tx` both pass where one is asked.
 */
export type ReadDb = Omit<
  Kysely<Database>,
  | "insertInto"
  | "replaceInto"
  | "updateTable"
  | "deleteFrom"
  | "mergeInto"
  | "transaction"
  | "startTransaction"
  | "connection"
  | "schema"
  | "destroy"
>;

/** Most runs of one transaction: the first, then reruns after a serialization failure. */
const MAX_RUNS = 5;

/**
 * Runs `work` in one transaction; after a serialization failure or a deadlock (PostgreSQL gave
 * up on it for running into another) the whole of `work` runs again, up to 5 runs in all, so
 * `work` must keep its results in what it returns, not in variables outside it. Started from a
 * leader's loop, the transaction is fenced by its term first (./leader-fence.ts).
 */
export async function runInTransaction<T>(
  db: Kysely<Database>,
  work: (tx: Tx) => Promise<T>,
  options: {
    /** Errors worth a rerun besides those (a lost race on an idempotency key: the rerun reads the winner's result). */
    retryOn?: (error: unknown) => boolean;
    /** PostgreSQL's isolation level (SQLite's transactions are serializable anyway). */
    isolation?: IsolationLevel;
  } = {},
): Promise<T> {
  for (let run = 1; ; run++) {
    try {
      const begin = db.transaction();
      const transaction =
        options.isolation === undefined ? begin : begin.setIsolationLevel(options.isolation);
      return await transaction.execute(async (tx) => {
        await checkFence(tx);
        return work(tx as Tx);
      });
    } catch (error) {
      const retry = isSerializationFailure(error) || options.retryOn?.(error) === true;
      if (run >= MAX_RUNS || !retry) throw error;
    }
  }
}
