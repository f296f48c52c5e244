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
  const last = await tx
    .selectFrom("cluster_tasks")
    .select((eb) => eb.fn.max("seq").as("seq"))
    .where("cluster_id", "=", clusterId)
    .executeTakeFirst();
  const waiting = await tx
    .selectFrom("cluster_tasks")
    .select((eb) => eb.fn.countAll<number | string>().as("n"))
    .where("cluster_id", "=", clusterId)
    .where("status", "=", "queued")
    .executeTakeFirstOrThrow();
  if (Number(waiting.n) >= MAX_QUEUED_TASKS)
    throw new TandemError(
      ErrorCode.CONFLICT,
      `cluster ${clusterId} already has ${MAX_QUEUED_TASKS} queued tasks`,
    );
  const seq = Number(last?.seq ?? 0) + 1;
  await tx
    .insertInto("cluster_tasks")
    .values({
      cluster_id: clusterId,
      seq,
      command: JSON.stringify(command),
      status: "queued",
      lease_seq: null,
      node_id: null,
      exit_code: null,
      submitted_at: nowMs,
      started_at: null,
      ended_at: null,
    })
    .execute();
  return seq;
}

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
