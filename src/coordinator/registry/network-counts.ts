import { sql, type Kysely } from "kysely";
import { NODE_STATUSES, isOnline, isProven, type NodeStatus } from "../../core/node-status.ts";
import type { NetworkStats } from "../../protocol/nodes.ts";
import type { CoordinatorEvents } from "../events.ts";
import type { Database } from "../store/schema.ts";
import { toNumber } from "../store/rows.ts";

/**
 * Nodes and GPUs of one (status, GPU model, flagged) triple; `model` null for CPU-only or unknown
 * cards; `flagged` when the nodes carry a flag (e.g. a GPU UUID seen on two devices).
 */
export interface CountBucket {
  status: string;
  model: string | null;
  flagged: boolean;
  nodes: number;
  gpus: number;
}

/** Tuning of {@link NetworkCounts}; every field has a default. */
export interface NetworkCountsOptions {
  /**
   * Interval of the backstop recount, ms (default 10,000): it catches what no event of this
   * process announced, such as another replica's changes on a shared PostgreSQL database.
   */
  recountIntervalMs: number;
  /** Where a failed recount or lookup is told (the counts keep their last value until the next). */
  onError: (error: unknown) => void;
}

const ONLINE_STATUSES = new Set(NODE_STATUSES.filter(isOnline));
/** Recounts in a row that may see an event land during their query before one is accepted. */
const MAX_RECOUNT_TRIES = 5;

/**
 * The network totals behind `GET /v1/network/stats`, kept in memory so a request costs no query.
 * Connected (online) and verified supply are counted apart: a node still `unverified`, or one
 * flagged, is connected but never verified supply.
 *
 * Counting 100,000 nodes per request took ~16 ms of SQLite CPU or 16–130 ms of PostgreSQL time
 * (bench/RESULTS.md). Here the counts per (status, model, flagged) are loaded once, then moved by
 * each committed `node:status` event: one point lookup of the node's model, GPU count and flags
 * (status changes do not change those), then a decrement and an increment. Events that may change what
 * a node counts as — registration, metadata, revocation — trigger a full recount, as does a timer
 * (other replicas' changes). Every operation runs in one queue, in event order.
 *
 * Exactness: an event is emitted after its commit, so a recount that starts after the event has
 * it. A recount whose query was under way when an event arrived may or may not include it, so it
 * is repeated; events numbered up to the accepted recount's start are then skipped as deltas. A
 * reader waits while an event-driven operation is queued, so a client that saw its change
 * committed on this replica reads counts that include it; the timer's recount makes no one wait.
 */
export class NetworkCounts {
  private readonly options: NetworkCountsOptions;
  private buckets = new Map<string, CountBucket>();
  private view: NetworkStats | undefined;
  private tail: Promise<void> = Promise.resolve();
  /** Event-driven operations queued or running; a reader waits for those queued before it. */
  private pending = 0;
  private recountQueued = false;
  private seq = 0;
  /** Events numbered up to this one are in the counts already. */
  private countedThrough = 0;
  private readonly unsubscribe: Array<() => void> = [];
  private timer: NodeJS.Timeout | undefined;
  private started = false;

  constructor(
    private readonly db: Kysely<Database>,
    private readonly events: CoordinatorEvents,
    options: Partial<NetworkCountsOptions> = {},
  ) {
    this.options = { recountIntervalMs: 10_000, onError: () => {}, ...options };
  }

  /** Loads the counts, then follows events and recounts on the timer. */
  async start(): Promise<void> {
    if (this.started) return;
    this.started = true;
    this.unsubscribe.push(
      this.events.on("node:status", ({ nodeId, from, to }) => {
        const seq = ++this.seq;
        this.enqueue(true, () => this.move(seq, nodeId, from, to));
      }),
      this.events.on("node:registered", () => this.requestRecount()),
      this.events.on("node:metadata", () => this.requestRecount()),
      this.events.on("device:revoked", () => this.requestRecount()),
    );
    this.requestRecount();
    this.timer = setInterval(
      () => this.enqueue(false, () => this.recount()),
      this.options.recountIntervalMs,
    );
    this.timer.unref();
    await this.tail;
  }

  /** Stops following events; waits for the operation under way. */
  async stop(): Promise<void> {
    clearInterval(this.timer);
    for (const off of this.unsubscribe.splice(0)) off();
    await this.tail;
  }

  /** The network totals, including every change this process has announced. */
  async stats(): Promise<NetworkStats> {
    if (this.pending > 0) await this.tail;
    return (this.view ??= statsFromBuckets(this.buckets.values()));
  }

  /** The counts per (status, model, flagged) that {@link stats} totals, as copies. */
  async snapshot(): Promise<CountBucket[]> {
    if (this.pending > 0) await this.tail;
    return [...this.buckets.values()].map((bucket) => ({ ...bucket }));
  }

  /**
   * Counts again from the store (also when another replica changed a node). One recount waits in
   * the queue at most: a burst of registrations costs one or two.
   */
  requestRecount(): void {
    ++this.seq;
    if (this.recountQueued) return;
    this.recountQueued = true;
    this.enqueue(true, () => {
      this.recountQueued = false;
      return this.recount();
    });
  }

  private enqueue(exact: boolean, operation: () => Promise<void>): void {
    if (exact) this.pending++;
    this.tail = this.tail
      .then(operation)
      .catch((error: unknown) => this.options.onError(error))
      .finally(() => {
        if (exact) this.pending--;
      });
  }

  private async recount(): Promise<void> {
    for (let tries = 1; ; tries++) {
      const startSeq = this.seq;
      const rows = await countBuckets(this.db);
      await this.announcementsLand();
      if (this.seq === startSeq || tries === MAX_RECOUNT_TRIES) {
        this.buckets = new Map(rows.map((b) => [key(b.status, b.model, b.flagged), b]));
        this.view = undefined;
        this.countedThrough = startSeq;
        // Given up on a quiet moment: whatever landed meanwhile is recounted once more.
        if (this.seq !== startSeq) this.requestRecount();
        return;
      }
    }
  }

  /**
   * A status change is announced a moment after it commits: one committed before the read above
   * may be announced only after the read returned, and a recount taken as current would then count
   * it twice (once read, once moved; seen on PostgreSQL under load). One more round trip to the
   * database and a turn of the event loop let those announcements land first: they bump `seq`, and
   * the read is taken again.
   */
  private async announcementsLand(): Promise<void> {
    await sql`SELECT 1`.execute(this.db);
    await new Promise((resolve) => setImmediate(resolve));
  }

  private async move(seq: number, nodeId: string, from: NodeStatus, to: NodeStatus) {
    if (seq <= this.countedThrough) return;
    const node = await this.db
      .selectFrom("nodes")
      .select(["gpu_model", "gpu_count", "flags"])
      .where("id", "=", nodeId)
      .executeTakeFirst();
    if (node === undefined) return;
    const flagged = node.flags !== "";
    this.add(from, node.gpu_model, flagged, -1, -node.gpu_count);
    this.add(to, node.gpu_model, flagged, 1, node.gpu_count);
    this.view = undefined;
  }

  private add(
    status: string,
    model: string | null,
    flagged: boolean,
    nodes: number,
    gpus: number,
  ): void {
    const k = key(status, model, flagged);
    const bucket = this.buckets.get(k) ?? { status, model, flagged, nodes: 0, gpus: 0 };
    bucket.nodes += nodes;
    bucket.gpus += gpus;
    if (bucket.nodes === 0) this.buckets.delete(k);
    else this.buckets.set(k, bucket);
  }
}

function key(status: string, model: string | null, flagged: boolean): string {
  return `${status}\u0000${model ?? ""}\u0000${flagged ? 1 : 0}`;
}

/**
 * Counts nodes and sums GPUs by status, model and flagged: the totals from an index-only scan of
 * `nodes_status_gpu_model_count`, less the flagged nodes' counts from the partial index
 * `nodes_flagged_status_gpu_model_count` (migration 0022; flagged nodes are few).
 */
export async function countBuckets(db: Kysely<Database>): Promise<CountBucket[]> {
  const [all, flagged] = await Promise.all([
    bucketQuery(db, false).execute(),
    bucketQuery(db, true).execute(),
  ]);
  const buckets = new Map<string, CountBucket>();
  const put = (row: (typeof all)[number], isFlagged: boolean, sign: 1 | -1) => {
    const k = key(row.status, row.gpu_model, isFlagged);
    const bucket = buckets.get(k) ?? {
      status: row.status,
      model: row.gpu_model,
      flagged: isFlagged,
      nodes: 0,
      gpus: 0,
    };
    bucket.nodes += sign * toNumber(row.nodes);
    bucket.gpus += sign * (row.gpus === null ? 0 : toNumber(row.gpus));
    buckets.set(k, bucket);
  };
  for (const row of all) put(row, false, 1);
  for (const row of flagged) {
    put(row, true, 1);
    put(row, false, -1);
  }
  return [...buckets.values()].filter((b) => b.nodes !== 0);
}

/** Nodes and GPUs per (status, model): of every node, or of the flagged ones only. */
export function bucketQuery(db: Kysely<Database>, flaggedOnly: boolean) {
  const q = db
    .selectFrom("nodes")
    .select(["status", "gpu_model"])
    .select((eb) => [
      eb.fn.countAll<number | string>().as("nodes"),
      eb.fn.sum<number | string | null>("gpu_count").as("gpus"),
    ]);
  return (flaggedOnly ? q.where("flags", "<>", "") : q).groupBy(["status", "gpu_model"]);
}

/** The public totals from the counts per (status, model). */
export function statsFromBuckets(buckets: Iterable<CountBucket>): NetworkStats {
  const byStatus: Record<string, number> = {};
  const byModel = new Map<string, NetworkStats["gpus"]["byModel"][number]>();
  let total = 0;
  let online = 0;
  let verified = 0;
  let gpusTotal = 0;
  let gpusOnline = 0;
  let gpusVerified = 0;
  for (const { status, model, flagged, nodes, gpus } of buckets) {
    const up = ONLINE_STATUSES.has(status as NodeStatus);
    const proven = up && !flagged && isProven(status as NodeStatus);
    byStatus[status] = (byStatus[status] ?? 0) + nodes;
    total += nodes;
    gpusTotal += gpus;
    if (up) {
      online += nodes;
      gpusOnline += gpus;
    }
    if (proven) {
      verified += nodes;
      gpusVerified += gpus;
    }
    if (model !== null && gpus > 0) {
      const entry = byModel.get(model) ?? { model, total: 0, online: 0, verified: 0 };
      entry.total += gpus;
      if (up) entry.online += gpus;
      if (proven) entry.verified += gpus;
      byModel.set(model, entry);
    }
  }
  return {
    nodes: { total, online, verified, byStatus },
    gpus: {
      total: gpusTotal,
      online: gpusOnline,
      verified: gpusVerified,
      byModel: [...byModel.values()].sort(
        (a, b) => b.total - a.total || a.model.localeCompare(b.model),
      ),
    },
  };
}
