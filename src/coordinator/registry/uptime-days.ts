import { ErrorCode, TandemError } from "../../core/errors.ts";
import { UPTIME_WINDOWS_MS, uptimeRatio } from "../../core/uptime.ts";
import type { UptimeDays } from "../../protocol/nodes.ts";
import { toNumber, toNumberOrNull } from "../store/rows.ts";
import type { ReadDb } from "../store/transaction.ts";

const DAY_MS = 86_400_000;
const DAYS = UPTIME_WINDOWS_MS["30d"] / DAY_MS;

/**
 * A node's uptime per day over the last 30 days, for the explorer's chart: thirty 24-hour windows
 * ending at `nowMs`, each computed like the node's 24 h figure (core/uptime.ts) from its recorded
 * online intervals. A window that ends before the node registered has no figure (null); the one
 * it registered in counts from registration.
 */
export async function uptimeDays(db: ReadDb, nodeId: string, nowMs: number): Promise<UptimeDays> {
  const node = await db
    .selectFrom("nodes")
    .select("registered_at")
    .where("id", "=", nodeId)
    .executeTakeFirst();
  if (node === undefined) throw new TandemError(ErrorCode.NOT_FOUND, `no node ${nodeId}`);
  const registeredAtMs = toNumber(node.registered_at);
  const fromMs = nowMs - DAYS * DAY_MS;
  const rows = await db
    .selectFrom("node_intervals")
    .select(["start_ms", "end_ms"])
    .where("node_id", "=", nodeId)
    .where((eb) => eb.or([eb("end_ms", "is", null), eb("end_ms", ">", fromMs)]))
    .execute();
  const intervals = rows.map((r) => ({
    startMs: toNumber(r.start_ms),
    endMs: toNumberOrNull(r.end_ms),
  }));
  return {
    nodeId,
    days: Array.from({ length: DAYS }, (_, i) => {
      const endMs = fromMs + (i + 1) * DAY_MS;
      return {
        from: new Date(endMs - DAY_MS).toISOString(),
        uptime:
          endMs <= registeredAtMs
            ? null
            : uptimeRatio(intervals, { nowMs: endMs, windowMs: DAY_MS, registeredAtMs }),
      };
    }),
  };
}
