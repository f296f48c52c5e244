import { PUBLIC_CLUSTER_EVENTS, type LiveClusterEvent } from "../../protocol/network.ts";
import { toNumber } from "../store/rows.ts";
import { publicDetail } from "./public-clusters.ts";
import type { ReadDb } from "../store/transaction.ts";

/** Tuning of {@link ClusterFeed}; every field has a default. */
export interface ClusterFeedOptions {
  /** Interval between two reads of new cluster events, ms (default 500). */
  pollMs: number;
  /** Rows read per poll at most; the next poll reads on (default 500). */
  batch: number;
  /**
   * Ids read again below the highest seen (default 200): on PostgreSQL a serial id can commit
   * after a higher one was read, and would otherwise be skipped.
   */
  overlap: number;
}

const PUBLIC_TYPES = Object.keys(PUBLIC_CLUSTER_EVENTS);
const SEEN_KEPT = 5000;

/**
 * Public cluster events, as they are committed, for the live stream. The scheduler appends every
 * cluster transition to `cluster_events` in the transaction that makes it, so that table is the
 * outbox: this reads the rows after the last one seen (a primary-key range, one query per
 * `pollMs` while anyone listens) and hands each public one on, anonymized like the public API.
 * It also sees what other replicas committed. A cluster's start reaches a browser within
 * `pollMs` plus one round trip.
 */
export class ClusterFeed {
  private readonly options: ClusterFeedOptions;
  private lastId = 0;
  private readonly seen = new Set<number>();
  private timer: NodeJS.Timeout | undefined;
  private polling: Promise<void> | undefined;

  constructor(
    private readonly db: ReadDb,
    private readonly onEvent: (event: LiveClusterEvent) => void,
    private readonly shouldPoll: () => boolean,
    private readonly onError: (error: unknown) => void,
    options: Partial<ClusterFeedOptions> = {},
  ) {
    this.options = { pollMs: 500, batch: 500, overlap: 200, ...options };
  }

  /** Starts after the newest event already stored: history is the public API's job. */
  async start(): Promise<void> {
    const newest = await this.db
      .selectFrom("cluster_events")
      .select((eb) => eb.fn.max("id").as("id"))
      .executeTakeFirst();
    this.lastId = newest?.id == null ? 0 : toNumber(newest.id);
    const window = await this.db
      .selectFrom("cluster_events")
      .select("id")
      .where("id", ">", this.lastId - this.options.overlap)
      .execute();
    for (const row of window) this.remember(toNumber(row.id));
    this.timer = setInterval(() => {
      if (this.shouldPoll()) void this.poll();
    }, this.options.pollMs);
    this.timer.unref();
  }

  async stop(): Promise<void> {
    clearInterval(this.timer);
    await this.polling;
  }

  /** Reads and hands on what is new (never two reads at once). */
  poll(): Promise<void> {
    this.polling ??= this.read()
      .catch((error: unknown) => this.onError(error))
      .finally(() => (this.polling = undefined));
    return this.polling;
  }

  private async read(): Promise<void> {
    const rows = await this.db
      .selectFrom("cluster_events as e")
      .innerJoin("clusters as c", "c.id", "e.cluster_id")
      .select(["e.id", "e.cluster_id", "e.at", "e.type", "e.detail", "c.status", "c.kind"])
      .where("e.id", ">", Math.max(0, this.lastId - this.options.overlap))
      .orderBy("e.id")
      .limit(this.options.batch)
      .execute();
    for (const row of rows) {
      const id = toNumber(row.id);
      if (this.seen.has(id)) continue;
      this.remember(id);
      if (id > this.lastId) this.lastId = id;
      if (!PUBLIC_TYPES.includes(row.type)) continue;
      this.onEvent({
        clusterId: row.cluster_id,
        kind: row.kind as LiveClusterEvent["kind"],
        status: row.status as LiveClusterEvent["status"],
        at: new Date(toNumber(row.at)).toISOString(),
        type: row.type,
        detail: publicDetail(row.type, row.detail),
      });
    }
  }

  private remember(id: number): void {
    this.seen.add(id);
    if (this.seen.size > SEEN_KEPT) {
      for (const old of this.seen) {
        if (this.seen.size <= SEEN_KEPT / 2) break;
        this.seen.delete(old);
      }
    }
  }
}
