import { sql, type Kysely, type RawBuilder } from "kysely";
import type { Clock } from "../../core/clock.ts";
import { ClusterStatus, isFinal } from "../../core/cluster-status.ts";
import { IdPrefix, newId } from "../../protocol/ids.ts";
import type { Dialect } from "../store/database.ts";
import { listParam } from "../store/list-param.ts";
import type { Database } from "../store/schema.ts";
import { toNumber } from "../store/rows.ts";
import { runInTransaction } from "../store/transaction.ts";

/** How much the network has been used, for `/metrics`: figures that need a query. */
export interface UsageFigures {
  /** GPU-hours served by every lease so far: each lease's served whole minutes × its node's GPUs. */
  gpuHoursServed: number;
  /** Nodes heard from (connected) in the 30 days before now. */
  nodesSeen30d: number;
}

const DAY_MS = 86_400_000;
const STATUSES = Object.values(ClusterStatus);
const FINAL = STATUSES.filter(isFinal);
const OPEN = STATUSES.filter((s) => !isFinal(s));
/**
 * How long before the newest cluster a cluster may still be created with an older id (another
 * replica's clock, a slow transaction): final clusters are looked for this far behind.
 */
const ID_MARGIN_MS = 10 * 60_000;

type Tx = Kysely<Database>;
type Clusters = { open: true } | { finalBelow: string } | { ids: readonly string[] };

/**
 * Served GPU-minutes and nodes seen in 30 days, kept so that a refresh reads what changed rather
 * than all history: the leases of a final cluster (completed, failed, terminated, expired) never
 * serve again, so their sum is added once and kept; each refresh sums only the leases of the open
 * clusters (pending, provisioning, running: `clusters_status` index, then each cluster's leases by
 * primary key) and adds the clusters that became final since (those it saw open, and the recent
 * final ones by id range: ids sort by creation time). The first refresh sums all history once.
 * A cluster created more than ID_MARGIN_MS behind the newest id and finished before any refresh
 * saw it open would be missed. Nodes seen in 30 days scan `nodes` (no index on `last_seen_at`):
 * figures in bench/RESULTS.md (metrics scrape).
 *
 * A lease's served minutes are those `leaseServedMinutes` (src/core/failover.ts) bills: whole
 * minutes from the later of its cluster's and its own start to the earliest of now, the end of its
 * billing, its cluster's paid end and its cluster's end.
 */
export class UsageTracker {
  /** GPU-minutes of the final clusters counted so far (undefined before the first refresh). */
  private settledGpuMinutes: number | undefined;
  /** Final clusters from this id on are looked for by id at each refresh. */
  private floorId = "";
  /** Final clusters counted at or after `floorId` (they come back in that look-up). */
  private counted = new Set<string>();
  /** The clusters open at the last refresh. */
  private open = new Set<string>();

  constructor(
    private readonly db: Kysely<Database>,
    private readonly dialect: Dialect,
  ) {}

  /** The figures as of `nowMs`, from one snapshot of the database. */
  async figures(nowMs: number): Promise<UsageFigures> {
    const read = await runInTransaction(
      this.db,
      async (tx) => {
        let settled = this.settledGpuMinutes;
        const floorId = settled === undefined ? idFloor(nowMs - ID_MARGIN_MS) : this.floorId;
        settled ??= await this.served(tx, nowMs, { finalBelow: floorId });
        const openNow = new Set(
          (await tx.selectFrom("clusters").select("id").where("status", "in", OPEN).execute()).map(
            (c) => c.id,
          ),
        );
        const recentFinal = await tx
          .selectFrom("clusters")
          .select("id")
          .where("id", ">=", floorId)
          .where("status", "in", FINAL)
          .execute();
        const ended = [...new Set([...recentFinal.map((c) => c.id), ...this.open])].filter(
          (id) => !openNow.has(id) && !this.counted.has(id),
        );
        if (ended.length > 0) settled += await this.served(tx, nowMs, { ids: ended });
        const live = await this.served(tx, nowMs, { open: true });
        const seen = await tx
          .selectFrom("nodes")
          .select((eb) => eb.fn.countAll<number | string>().as("nodes"))
          .where("last_seen_at", ">=", nowMs - 30 * DAY_MS)
          .executeTakeFirstOrThrow();
        return { settled, floorId, openNow, ended, live, seen: toNumber(seen.nodes) };
      },
      { isolation: "repeatable read" },
    );
    const nextFloor = idFloor(nowMs - ID_MARGIN_MS);
    this.floorId = nextFloor > read.floorId ? nextFloor : read.floorId;
    this.counted = new Set([...this.counted, ...read.ended].filter((id) => id >= this.floorId));
    this.open = read.openNow;
    this.settledGpuMinutes = read.settled;
    return { gpuHoursServed: (read.settled + read.live) / 60, nodesSeen30d: read.seen };
  }

  /** Served GPU-minutes of the leases of `clusters`, summed in the database. */
  private async served(tx: Tx, nowMs: number, clusters: Clusters): Promise<number> {
    // SQLite's multi-argument min/max are PostgreSQL's LEAST/GREATEST.
    const [least, greatest] = this.dialect === "postgres" ? ["LEAST", "GREATEST"] : ["MIN", "MAX"];
    // A bound number is a double to SQLite: cast, so the minutes below divide as integers.
    const now = sql`CAST(${nowMs} AS BIGINT)`;
    const { rows } = await sql<{ gpu_minutes: number | string | null }>`
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
        FROM clusters c
        JOIN cluster_nodes cn ON cn.cluster_id = c.id
        JOIN nodes n ON n.id = cn.node_id
        WHERE ${this.clusterFilter(clusters)}
          AND cn.started_at IS NOT NULL AND c.started_at IS NOT NULL AND n.gpu_count > 0
      ) s
      WHERE s.to_ms > s.from_ms`.execute(tx);
    const gpuMinutes = rows[0]?.gpu_minutes ?? null;
    return gpuMinutes === null ? 0 : toNumber(gpuMinutes);
  }

  private clusterFilter(clusters: Clusters): RawBuilder<unknown> {
    const statuses = (list: readonly string[]) => sql.join(list.map((s) => sql`${s}`));
    if ("open" in clusters) return sql`c.status IN (${statuses(OPEN)})`;
    if ("finalBelow" in clusters)
      return sql`c.id < ${clusters.finalBelow} AND c.status IN (${statuses(FINAL)})`;
    const ids = listParam(clusters.ids);
    return this.dialect === "postgres"
      ? sql`c.id IN (SELECT json_array_elements_text(${ids}::json))`
      : sql`c.id IN (SELECT value FROM json_each(${ids}))`;
  }
}

/** The lowest cluster id made at `ms`: its time part alone sorts before every id of that time. */
function idFloor(ms: number): string {
  return newId(IdPrefix.cluster, Math.max(0, ms)).slice(0, `${IdPrefix.cluster}_`.length + 10);
}

/** The usage figures as of `nowMs`, summing all history (what a tracker's first refresh does). */
export function usageFigures(
  db: Kysely<Database>,
  dialect: Dialect,
  nowMs: number,
): Promise<UsageFigures> {
  return new UsageTracker(db, dialect).figures(nowMs);
}

/**
 * A {@link UsageTracker}'s figures at most `maxAgeMs` old (default 60,000: Prometheus scrapes
 * every 15 s, so one scrape in four of each replica refreshes). A read past that age waits for one
 * refresh, shared by the reads that come meanwhile; a failed refresh is told to `onError` and the
 * last figures stand (undefined before any succeeded).
 */
export class UsageReader {
  private readonly tracker: UsageTracker;
  private last: { figures: UsageFigures; atMs: number } | undefined;
  private loading: Promise<UsageFigures | undefined> | undefined;

  constructor(
    db: Kysely<Database>,
    dialect: Dialect,
    private readonly clock: Clock,
    private readonly onError: (error: unknown) => void,
    private readonly maxAgeMs = 60_000,
  ) {
    this.tracker = new UsageTracker(db, dialect);
  }

  read(): Promise<UsageFigures | undefined> {
    const nowMs = this.clock.now();
    if (this.last !== undefined && nowMs - this.last.atMs < this.maxAgeMs)
      return Promise.resolve(this.last.figures);
    this.loading ??= this.tracker
      .figures(nowMs)
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
