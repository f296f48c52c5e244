import { sql, type Kysely } from "kysely";
import type { Clock } from "../../core/clock.ts";
import type { Dialect } from "../store/database.ts";
import type { Database } from "../store/schema.ts";
import { toNumber } from "../store/rows.ts";

/** How much the network has been used, for `/metrics`: figures that need a query. */
export interface UsageFigures {
  /** GPU-hours served by every lease so far: each lease's served whole minutes × its node's GPUs. */
  gpuHoursServed: number;
  /** Nodes heard from (connected) in the 30 days before now. */
  nodesSeen30d: number;
}

const DAY_MS = 86_400_000;

/**
 * The usage figures as of `nowMs`, in two aggregate queries.
 *
 * A lease's served minutes are those `leaseServedMinutes` (src/core/failover.ts) bills: whole
 * minutes from the later of its cluster's and its own start to the earliest of now, the end of its
 * billing, its cluster's paid end and its cluster's end. Summed in the database, so a scrape moves
 * no lease rows: a scan of `cluster_nodes` with two key lookups per lease (clusters, nodes), and a
 * scan of `nodes` for the 30-day count (no index on `last_seen_at`; 100,000 nodes are a few ms).
 */
export async function usageFigures(
  db: Kysely<Database>,
  dialect: Dialect,
  nowMs: number,
): Promise<UsageFigures> {
  // SQLite's multi-argument min/max are PostgreSQL's LEAST/GREATEST.
  const [least, greatest] = dialect === "postgres" ? ["LEAST", "GREATEST"] : ["MIN", "MAX"];
  // A bound number is a double to SQLite: cast, so the minutes below divide as integers.
  const now = sql`CAST(${nowMs} AS BIGINT)`;
  const [served, seen] = await Promise.all([
    sql<{ gpu_minutes: number | string | null }>`
      SELECT SUM(s.gpu_count * ((s.to_ms - s.from_ms) / 60000)) AS gpu_minutes
      FROM (
        SELECT n.gpu_count,
          ${sql.raw(greatest)}(c.started_at, cn.started_at) AS from_ms,
          ${sql.raw(least)}(
            ${now},
            COALESCE(cn.billed_until, ${now}),
            COALESCE(c.ends_at, ${now}),
            COALESCE(c.ended_at, ${now})
          ) AS to_ms
        FROM cluster_nodes cn
        JOIN clusters c ON c.id = cn.cluster_id
        JOIN nodes n ON n.id = cn.node_id
        WHERE cn.started_at IS NOT NULL AND c.started_at IS NOT NULL AND n.gpu_count > 0
      ) s
      WHERE s.to_ms > s.from_ms`.execute(db),
    db
      .selectFrom("nodes")
      .select((eb) => eb.fn.countAll<number | string>().as("nodes"))
      .where("last_seen_at", ">=", nowMs - 30 * DAY_MS)
      .executeTakeFirstOrThrow(),
  ]);
  const gpuMinutes = served.rows[0]?.gpu_minutes ?? null;
  return {
    gpuHoursServed: gpuMinutes === null ? 0 : toNumber(gpuMinutes) / 60,
    nodesSeen30d: toNumber(seen.nodes),
  };
}

/**
 * {@link usageFigures} at most `maxAgeMs` old (default 60,000: Prometheus scrapes every 15 s, so
 * one scrape in four of each replica queries). A read past that age waits for one fresh query,
 * shared by the reads that come meanwhile; a failed query is told to `onError` and the last figures
 * stand (undefined before any succeeded).
 */
export class UsageReader {
  private last: { figures: UsageFigures; atMs: number } | undefined;
  private loading: Promise<UsageFigures | undefined> | undefined;

  constructor(
    private readonly db: Kysely<Database>,
    private readonly dialect: Dialect,
    private readonly clock: Clock,
    private readonly onError: (error: unknown) => void,
    private readonly maxAgeMs = 60_000,
  ) {}

  read(): Promise<UsageFigures | undefined> {
    const nowMs = this.clock.now();
    if (this.last !== undefined && nowMs - this.last.atMs < this.maxAgeMs)
      return Promise.resolve(this.last.figures);
    this.loading ??= usageFigures(this.db, this.dialect, nowMs)
      .then(
        (figures) => {
          this.last = { figures, atMs: nowMs };
          return figures;
        },
        (error: unknown) => {
          this.onError(error);
          return this.last?.figures;
        },
      )
      .finally(() => (this.loading = undefined));
    return this.loading;
  }
}
