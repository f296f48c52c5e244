import type { FastifyBaseLogger } from "fastify";
import type { Kysely } from "kysely";
import type { z } from "zod";
import type { Clock } from "../../core/clock.ts";
import { isFinal } from "../../core/cluster-status.ts";
import type { JobLogMessage } from "../../protocol/worker-messages.ts";
import type { CoordinatorEvents } from "../events.ts";
import type { Database } from "../store/schema.ts";
import { runInTransaction } from "../store/transaction.ts";

type JobLog = z.infer<typeof JobLogMessage>;

/** Caps and batching of stored job output. */
export interface LogWriterOptions {
  /** Most lines stored per cluster; later lines are dropped, and one line says so. */
  maxLinesPerCluster: number;
  /** Most output stored per rank, bytes (text plus LINE_COST_BYTES a line; default 64 MiB). */
  maxBytesPerRank: number;
  /** Most output waiting to be written, bytes (default 16 MiB); beyond it batches are dropped. */
  maxQueuedBytes: number;
  /** Most lines written in one transaction (default 5,000). */
  linesPerTransaction: number;
  /** Output of a run arriving this long after its lease ended is still stored, ms (default 60 s). */
  lateOutputMs: number;
}

export const DEFAULT_LOG_WRITER_OPTIONS: Omit<LogWriterOptions, "maxLinesPerCluster"> = {
  maxBytesPerRank: 64 * 1024 * 1024,
  maxQueuedBytes: 16 * 1024 * 1024,
  linesPerTransaction: 5_000,
  lateOutputMs: 60_000,
};

/** What a stored line costs beyond its text (row, index entry), bytes; the worker counts alike. */
const LINE_COST_BYTES = 32;
/** Rows in one INSERT statement (5 parameters each: within SQLite's and PostgreSQL's limits). */
const ROWS_PER_STATEMENT = 1_000;
const TRUNCATED = "[tandem] output truncated:";

interface Entry {
  nodeId: string;
  message: JobLog;
  lines: string[];
  /** When it arrived (coordinator clock, ms). */
  atMs: number;
  bytes: number;
}

interface ClusterOutput {
  lines: number;
  full: boolean;
  ranks: Map<
    number,
    { bytes: number; full: boolean; dropped: { entry: Entry; lines: number } | undefined }
  >;
  /** Set once the cluster has ended: its memory goes lateOutputMs later. */
  endedAtMs: number | undefined;
  /** Some output was found to be a node's own run here: kept until the cluster ends. */
  owned: boolean;
}

/**
 * Job output from the worker channel into `cluster_logs`, off the message path. `offer` is
 * synchronous and cheap: it applies the caps (per cluster in lines, per rank in bytes; one
 * `[tandem] output truncated: …` line when one is reached) and queues the lines, up to
 * `maxQueuedBytes`. One writer loop empties the queue in batched transactions (one per batch of
 * messages, many statements of many rows), yielding to the event loop between them, so a flood
 * never stalls heartbeats or API answers; what it cannot keep up with is dropped and noted.
 *
 * Only a node's own runs are stored: each batch's runs are checked against their leases (one
 * query per run and batch), and a run's output is accepted while its lease is active and for
 * `lateOutputMs` after it ended (the worker sends job-exit ahead of queued output).
 *
 * The counts are this process's: after a restart, or on another replica, a rank's count starts
 * again (at most one more cap's worth per coordinator process).
 */
export class LogWriter {
  private readonly clusters = new Map<string, ClusterOutput>();
  private readonly ended: Array<{ clusterId: string; atMs: number }> = [];
  private queue: Entry[] = [];
  private queuedBytes = 0;
  private writing: Promise<void> | undefined;
  /** Entries queued so far, and how many of them the loop is done with (FIFO). */
  private queuedCount = 0;
  private doneCount = 0;
  private readonly waiters: Array<{ count: number; resolve: () => void }> = [];

  constructor(
    private readonly deps: {
      db: Kysely<Database>;
      clock: Clock;
      logger: FastifyBaseLogger;
      events: CoordinatorEvents;
    },
    private readonly options: LogWriterOptions,
  ) {
    deps.events.on("cluster:status", ({ clusterId, to }) => {
      if (isFinal(to)) this.forget(clusterId);
    });
  }

  /** Queues a `job-log` from `nodeId`'s worker (caps applied); the writer loop stores it. */
  offer(nodeId: string, message: JobLog): void {
    const atMs = this.deps.clock.now();
    this.evict(atMs);
    let cluster = this.clusters.get(message.clusterId);
    if (cluster === undefined) {
      cluster = { lines: 0, full: false, ranks: new Map(), endedAtMs: undefined, owned: false };
      this.clusters.set(message.clusterId, cluster);
    }
    let rank = cluster.ranks.get(message.rank);
    if (rank === undefined) {
      rank = { bytes: 0, full: false, dropped: undefined };
      cluster.ranks.set(message.rank, rank);
    }
    if (cluster.full || rank.full) return;
    let lines: string[] = [];
    let bytes = 0;
    let note: string | undefined;
    for (const line of message.lines) {
      const cost = Buffer.byteLength(line) + LINE_COST_BYTES;
      if (cluster.lines + lines.length >= this.options.maxLinesPerCluster - 1) {
        cluster.full = true;
        note =
          `${TRUNCATED} the coordinator stores at most ${this.options.maxLinesPerCluster} lines ` +
          "of a cluster's output; later lines are not stored";
        break;
      }
      if (rank.bytes + bytes + cost > this.options.maxBytesPerRank) {
        rank.full = true;
        note =
          `${TRUNCATED} the coordinator stores at most ${this.options.maxBytesPerRank} bytes ` +
          `of rank ${message.rank}'s output; later output is not stored`;
        break;
      }
      lines.push(line);
      bytes += cost;
    }
    if (this.queuedBytes + bytes > this.options.maxQueuedBytes) {
      // Behind: dropped, and noted once the queue is empty (`take`); a cap's note is kept.
      const entry = { nodeId, message, lines: [], atMs, bytes: 0 };
      if (lines.length > 0)
        rank.dropped = { entry, lines: (rank.dropped?.lines ?? 0) + lines.length };
      lines = [];
      bytes = 0;
    }
    if (note !== undefined) lines.push(note);
    if (lines.length === 0) return;
    cluster.lines += lines.length;
    rank.bytes += bytes;
    this.push({ nodeId, message, lines, atMs, bytes });
  }

  /** Clusters whose output counts are held in memory. */
  get trackedClusters(): number {
    return this.clusters.size;
  }

  /** Settles once everything queued so far is stored (or failed to be). */
  async idle(): Promise<void> {
    while (this.writing !== undefined) await this.writing;
  }

  /**
   * Settles once the output queued before this call is stored: a job-exit waits for it, so a
   * cluster seen ended shows the output its worker sent before the exit.
   */
  written(): Promise<void> {
    if (this.doneCount >= this.queuedCount) return Promise.resolve();
    return new Promise((resolve) => this.waiters.push({ count: this.queuedCount, resolve }));
  }

  private push(entry: Entry): void {
    this.queue.push(entry);
    this.queuedBytes += entry.bytes;
    this.queuedCount += 1;
    this.writing ??= this.write().finally(() => (this.writing = undefined));
  }

  /** The cluster has ended: its counts are kept for late output, then forgotten. */
  private forget(clusterId: string): void {
    const cluster = this.clusters.get(clusterId);
    if (cluster === undefined || cluster.endedAtMs !== undefined) return;
    cluster.endedAtMs = this.deps.clock.now();
    this.ended.push({ clusterId, atMs: cluster.endedAtMs });
  }

  private evict(nowMs: number): void {
    while (this.ended.length > 0 && this.ended[0]!.atMs + this.options.lateOutputMs < nowMs)
      this.clusters.delete(this.ended.shift()!.clusterId);
  }

  private async write(): Promise<void> {
    // Let the rest of this turn's messages join the first batch.
    await new Promise((resolve) => setImmediate(resolve));
    for (let batch = this.take(); batch.length > 0; batch = this.take()) {
      try {
        await this.store(batch);
      } catch (error) {
        this.deps.logger.error({ err: error, lines: batch.length }, "job output not stored");
      }
      this.doneCount += batch.length;
      while (this.waiters[0] !== undefined && this.waiters[0].count <= this.doneCount)
        this.waiters.shift()!.resolve();
      await new Promise((resolve) => setImmediate(resolve));
    }
  }

  /** The next batch: whole entries up to `linesPerTransaction` lines; notes owed once empty. */
  private take(): Entry[] {
    if (this.queue.length === 0) this.queueNotes();
    let lines = 0;
    let count = 0;
    while (count < this.queue.length && (count === 0 || lines < this.options.linesPerTransaction))
      lines += this.queue[count++]!.lines.length;
    const batch = this.queue.slice(0, count);
    this.queue = this.queue.slice(count);
    for (const entry of batch) this.queuedBytes -= entry.bytes;
    return batch;
  }

  private queueNotes(): void {
    for (const cluster of this.clusters.values())
      for (const rank of cluster.ranks.values()) {
        const dropped = rank.dropped;
        if (dropped === undefined) continue;
        rank.dropped = undefined;
        this.queuedCount += 1;
        this.queue.push({
          ...dropped.entry,
          lines: [
            `${TRUNCATED} ${dropped.lines} lines not stored: the coordinator's log writer was behind`,
          ],
        });
      }
  }

  private async store(batch: Entry[]): Promise<void> {
    const runs = new Map<string, Entry>();
    for (const entry of batch) runs.set(runKey(entry), entry);
    const allowed = new Set<string>();
    for (const [key, entry] of runs) if (await this.isOwnRun(entry)) allowed.add(key);
    for (const key of allowed) {
      const cluster = this.clusters.get(runs.get(key)?.message.clusterId ?? "");
      if (cluster !== undefined) cluster.owned = true;
    }
    // Output naming only runs that are no node's here holds no memory (a hostile worker's).
    for (const { message } of runs.values())
      if (this.clusters.get(message.clusterId)?.owned === false)
        this.clusters.delete(message.clusterId);
    const rows = batch
      .filter((entry) => allowed.has(runKey(entry)))
      .flatMap(({ message, lines, atMs }) =>
        lines.map((text) => ({
          cluster_id: message.clusterId,
          rank: message.rank,
          stream: message.stream,
          at: atMs,
          text,
        })),
      );
    if (rows.length === 0) return;
    await runInTransaction(this.deps.db, async (tx) => {
      for (let i = 0; i < rows.length; i += ROWS_PER_STATEMENT)
        await tx
          .insertInto("cluster_logs")
          .values(rows.slice(i, i + ROWS_PER_STATEMENT))
          .execute();
    });
  }

  /** The run is this node's, its lease active or ended at most `lateOutputMs` before. */
  private async isOwnRun({ nodeId, message, atMs }: Entry): Promise<boolean> {
    const lease = await this.deps.db
      .selectFrom("cluster_nodes")
      .select("seq")
      .where("cluster_id", "=", message.clusterId)
      .where("node_id", "=", nodeId)
      .where("rank", "=", message.rank)
      .where("attempt", "=", message.attempt)
      .where((eb) =>
        eb.or([eb("active", "=", 1), eb("ended_at", ">=", atMs - this.options.lateOutputMs)]),
      )
      .executeTakeFirst();
    return lease !== undefined;
  }
}

function runKey({ nodeId, message }: Entry): string {
  return `${nodeId}/${message.clusterId}/${message.rank}/${message.attempt}`;
}
