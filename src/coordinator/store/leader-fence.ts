import { AsyncLocalStorage } from "node:async_hooks";
import type { Transaction } from "kysely";
import { ErrorCode, TandemError } from "../../core/errors.ts";
import type { Database } from "./schema.ts";

/**
 * Fencing for the singleton loops of many coordinator replicas (DESIGN.md §7). A leader runs its
 * loops inside `runFenced(term, …)`; every transaction started from there (runInTransaction) first
 * checks that `coordinator_leader.term` is still that term, with a share lock on the row held to
 * its commit. A new leader moves the term with an UPDATE of that row, which waits for the share
 * locks of the transactions already past the check: so once a new leader's term is in, no write of
 * the former leader commits after it — even one paused (SIGSTOP, a long GC) in the middle of a
 * settlement pass and resumed later, which fails here with FENCED_OUT and rolls back.
 *
 * The term travels in async context (AsyncLocalStorage), not in parameters: every transaction
 * a loop makes, however deep, is fenced without threading the term through the systems. Work a
 * loop only schedules (a worker message answered later) runs in its own context, unfenced.
 */
const fenceContext = new AsyncLocalStorage<number>();

/** Runs `work` as the leader of `term`: the transactions it starts are fenced by that term. */
export function runFenced<T>(term: number, work: () => Promise<T>): Promise<T> {
  return fenceContext.run(term, work);
}

/** The term the current async context works under; undefined outside a leader's loop. */
export function currentFenceTerm(): number | undefined {
  return fenceContext.getStore();
}

/**
 * Inside a transaction: throws FENCED_OUT unless the leader's term is still the one this context
 * works under, and holds a share lock on the leader row until the transaction ends. Nothing to
 * check outside a fenced context (and never on SQLite: one process, no fence is ever set).
 */
export async function checkFence(tx: Transaction<Database>): Promise<void> {
  const term = fenceContext.getStore();
  if (term === undefined) return;
  const row = await tx
    .selectFrom("coordinator_leader")
    .select("term")
    .where("id", "=", 1)
    .where("term", "=", term)
    .forShare()
    .executeTakeFirst();
  if (row === undefined)
    throw new TandemError(
      ErrorCode.FENCED_OUT,
      `this replica's term ${term} is over: another replica leads`,
      { details: { term } },
    );
}
