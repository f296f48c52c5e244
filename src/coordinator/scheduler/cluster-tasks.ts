import { ErrorCode, TandemError } from "../../core/errors.ts";
import type { Tx } from "../store/transaction.ts";

/**
 * The task queue of an autoscaled batch cluster (rows of `cluster_tasks`): queued → running →
 * done | failed, back to queued when its node is lost, cancelled at the cluster's end. The
 * autoscaler (./autoscaler.ts) hands queued tasks to idle nodes.
 */

/** Most tasks waiting in one cluster's queue; a submit beyond it is refused. */
export const MAX_QUEUED_TASKS = 10_000;

/** Queues a task at the end of the cluster's queue (in the caller's transaction); its number. */
export async function queueTask(
  tx: Tx,
  clusterId: string,
  command: string[],
  nowMs: number,
): Promise<number> {
  return queueTasks(tx, clusterId, [command], nowMs);
}

/**
 * Queues `commands` in order at the end of the cluster's queue (in the caller's transaction):
 * one read of the queue and one insert for the lot. Answers the first task's number; the others
 * follow it. A batch that would pass `MAX_QUEUED_TASKS` is refused whole.
 */
export async function queueTasks(
  tx: Tx,
  clusterId: string,
  commands: readonly string[][],
  nowMs: number,
): Promise<number> {
  const queue = await tx
    .selectFrom("cluster_tasks")
    .select((eb) => [
      eb.fn.max("seq").as("seq"),
      eb.fn
        .sum<number | string | null>(eb.case().when("status", "=", "queued").then(1).else(0).end())
        .as("waiting"),
    ])
    .where("cluster_id", "=", clusterId)
    .executeTakeFirst();
  const waiting = Number(queue?.waiting ?? 0);
  if (waiting + commands.length > MAX_QUEUED_TASKS)
    throw new TandemError(
      ErrorCode.CONFLICT,
      `cluster ${clusterId} has ${waiting} queued tasks; ${commands.length} more would pass the limit of ${MAX_QUEUED_TASKS}`,
    );
  const first = Number(queue?.seq ?? 0) + 1;
  // Inserted in slices: PostgreSQL takes at most 65,535 parameters per statement.
  for (let at = 0; at < commands.length; at += INSERT_ROWS)
    await tx
      .insertInto("cluster_tasks")
      .values(
        commands.slice(at, at + INSERT_ROWS).map((command, i) => ({
          cluster_id: clusterId,
          seq: first + at + i,
          command: JSON.stringify(command),
          status: "queued",
          lease_seq: null,
          node_id: null,
          exit_code: null,
          submitted_at: nowMs,
          started_at: null,
          ended_at: null,
        })),
      )
      .execute();
  return first;
}

/** Rows per insert statement (10 columns each; SQLite allows 32,766 parameters). */
const INSERT_ROWS = 500;

/** The task a lost lease was running goes back to the queue (another node runs it again). */
export async function requeueTask(tx: Tx, clusterId: string, leaseSeq: number): Promise<void> {
  await tx
    .updateTable("cluster_tasks")
    .set({ status: "queued", lease_seq: null, node_id: null, started_at: null })
    .where("cluster_id", "=", clusterId)
    .where("lease_seq", "=", leaseSeq)
    .where("status", "=", "running")
    .execute();
}

/** At the cluster's end, whatever did not run is cancelled. */
export async function cancelTasks(tx: Tx, clusterId: string, nowMs: number): Promise<void> {
  await tx
    .updateTable("cluster_tasks")
    .set({ status: "cancelled", ended_at: nowMs })
    .where("cluster_id", "=", clusterId)
    .where("status", "in", ["queued", "running"])
    .execute();
}
