import type { Kysely } from "kysely";
import type { Database } from "../store/schema.ts";
import { appendHistory } from "./node-history.ts";

/**
 * Adds `flag` to the node's flags (comma-separated; a flagged node is never placed) and records it
 * in the node's history with `detail`; nothing when the node has it already.
 */
export async function addNodeFlag(
  tx: Kysely<Database>,
  nodeId: string,
  flag: string,
  detail: Record<string, unknown>,
  nowMs: number,
): Promise<void> {
  const node = await tx
    .selectFrom("nodes")
    .select("flags")
    .where("id", "=", nodeId)
    .executeTakeFirstOrThrow();
  const flags = node.flags === "" ? [] : node.flags.split(",");
  if (flags.includes(flag)) return;
  await tx
    .updateTable("nodes")
    .set({ flags: [...flags, flag].join(",") })
    .where("id", "=", nodeId)
    .execute();
  await appendHistory(tx, {
    nodeId,
    atMs: nowMs,
    actor: "coordinator",
    action: "flagged",
    detail: { flag, ...detail },
  });
}
