import type { Kysely } from "kysely";
import type { Database } from "../store/schema.ts";

/** One append-only row of a node's history: who did what, when, from which status to which. */
export interface HistoryRecord {
  nodeId: string;
  atMs: number;
  actor: string;
  action: string;
  from?: string | null;
  to?: string | null;
  detail?: Record<string, unknown>;
}

export async function appendHistory(db: Kysely<Database>, record: HistoryRecord): Promise<void> {
  await db
    .insertInto("node_history")
    .values({
      node_id: record.nodeId,
      at: record.atMs,
      actor: record.actor,
      action: record.action,
      from_status: record.from ?? null,
      to_status: record.to ?? null,
      detail: JSON.stringify(record.detail ?? {}),
    })
    .execute();
}
