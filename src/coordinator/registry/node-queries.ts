import type { Kysely, Selectable } from "kysely";
import { ErrorCode, TandemError } from "../../core/errors.ts";
import { gpuModelByName } from "../../core/gpu-catalog.ts";
import { formatMoney, units } from "../../core/money.ts";
import type { NodeStatus } from "../../core/node-status.ts";
import { REPUTATION_HALF_LIFE_DAYS } from "../../core/reputation.ts";
import type { HardwareReport } from "../../protocol/hardware.ts";
import type {
  HistoryEntry,
  NetworkStats,
  NodeSortKey,
  NodeView,
  ReputationBreakdown,
} from "../../protocol/nodes.ts";
import type { Database, NodesTable } from "../store/schema.ts";
import { toNumber, toNumberOrNull } from "../store/rows.ts";
import { countBuckets, statsFromBuckets, type NetworkCounts } from "./network-counts.ts";
import {
  CATALOG_PRICING,
  defaultOrder,
  encodeSortCursor,
  sortValueOf,
  sortedQuery,
  syncNodePricing,
  type NodePricing,
  type SortOrder,
} from "./node-sort.ts";
import { computeReputations, subjectOf } from "./reputation.ts";

export interface NodeFilter {
  gpuModel?: string | undefined;
  region?: string | undefined;
  zone?: string | undefined;
  status?: NodeStatus | undefined;
  /** Minimum 30-day uptime, 0..1. */
  minUptime?: number | undefined;
  minVramMiB?: number | undefined;
  /** Minimum reputation score, 0..100 (the cached figure). */
  minReputation?: number | undefined;
}

export interface Page<T> {
  items: T[];
  nextCursor: string | null;
}

type NodeRow = Selectable<NodesTable>;

/**
 * Read side of the registry: the public node list, one node, its history, network totals. Node
 * prices are read from the stored column, brought to this coordinator's `pricing` before the first
 * read (`preparePricing`; the composition root calls it at start).
 */
export class NodeQueries {
  private pricingSynced: Promise<void> | undefined;

  constructor(
    private readonly db: Kysely<Database>,
    private readonly counts?: NetworkCounts,
    private readonly pricing: NodePricing = CATALOG_PRICING,
  ) {}

  /** Recomputes the stored node prices once if they were computed under other pricing. */
  preparePricing(): Promise<void> {
    this.pricingSynced ??= syncNodePricing(this.db, this.pricing).then(
      () => undefined,
      (error: unknown) => {
        this.pricingSynced = undefined;
        throw error;
      },
    );
    return this.pricingSynced;
  }

  async list(
    filter: NodeFilter,
    limit: number,
    cursor?: string,
    sort: NodeSortKey = "registered",
    order: SortOrder = defaultOrder(sort),
  ): Promise<Page<NodeView>> {
    await this.preparePricing();
    const rows = await this.listQuery(filter, limit + 1, cursor, sort, order).execute();
    const page = rows.slice(0, limit);
    const last = page.at(-1);
    let nextCursor: string | null = null;
    if (rows.length > limit && last !== undefined) {
      nextCursor =
        sort === "registered"
          ? encodeCursor(last.id)
          : encodeSortCursor(
              sort,
              sortValueOf(sort, last, toNumberOrNull(last.effective_price_per_hour)),
              last.id,
            );
    }
    return { items: page.map(toNodeView), nextCursor };
  }

  /** The query behind `list` (one row more than a page), for EXPLAIN in tests. */
  listQuery(
    filter: NodeFilter,
    rows: number,
    cursor: string | undefined,
    sort: NodeSortKey,
    order: SortOrder,
  ) {
    let query = this.db.selectFrom("nodes").selectAll().limit(rows);
    if (filter.gpuModel !== undefined) query = query.where("gpu_model", "=", filter.gpuModel);
    if (filter.region !== undefined) query = query.where("region", "=", filter.region);
    if (filter.zone !== undefined) query = query.where("zone", "=", filter.zone);
    if (filter.status !== undefined) query = query.where("status", "=", filter.status);
    if (filter.minUptime !== undefined) query = query.where("uptime_30d", ">=", filter.minUptime);
    if (filter.minVramMiB !== undefined) query = query.where("vram_mib", ">=", filter.minVramMiB);
    if (filter.minReputation !== undefined)
      query = query.where("reputation", ">=", filter.minReputation);
    if (sort === "registered") {
      query = query.orderBy("id", order);
      if (cursor !== undefined)
        query = query.where("id", order === "asc" ? ">" : "<", decodeCursor(cursor));
    } else {
      query = sortedQuery(query, sort, order, cursor);
    }
    return query;
  }

  async get(nodeId: string): Promise<NodeView> {
    return toNodeView(await this.row(nodeId));
  }

  /**
   * A node's reputation computed from its history at `nowMs`, with its terms and evidence; the
   * cached score on the node catches up on the next refresh.
   */
  async reputation(nodeId: string, nowMs: number): Promise<ReputationBreakdown> {
    const row = await this.row(nodeId);
    const r = (await computeReputations(this.db, [subjectOf(row)], nowMs)).get(nodeId)!;
    return {
      nodeId,
      score: r.score,
      computedAt: new Date(nowMs).toISOString(),
      halfLifeDays: REPUTATION_HALF_LIFE_DAYS,
      components: r.components,
      evidence: { uptime30d: row.uptime_30d, ...r.evidence },
    };
  }

  private async row(nodeId: string): Promise<NodeRow> {
    await this.preparePricing();
    const row = await this.db
      .selectFrom("nodes")
      .selectAll()
      .where("id", "=", nodeId)
      .executeTakeFirst();
    if (row === undefined) throw new TandemError(ErrorCode.NOT_FOUND, `no node ${nodeId}`);
    return row;
  }

  /**
   * A node's history, a page at a time. `viewer` is who asks: the node's owner and admins see
   * every row as written; anyone else sees no account named (actors and ids in reasons and
   * details read `account`), so the public record cannot link a consumer to its clusters.
   */
  async history(
    nodeId: string,
    limit: number,
    cursor?: string,
    viewer?: { accountId: string; admin: boolean },
  ): Promise<Page<HistoryEntry>> {
    const node = await this.row(nodeId);
    const full = viewer !== undefined && (viewer.admin || viewer.accountId === node.account_id);
    let query = this.db
      .selectFrom("node_history")
      .selectAll()
      .where("node_id", "=", nodeId)
      .orderBy("id")
      .limit(limit + 1);
    if (cursor !== undefined) query = query.where("id", ">", decodeHistoryCursor(cursor));
    const rows = await query.execute();
    const items = rows.slice(0, limit).map((r): HistoryEntry => ({
      id: toNumber(r.id),
      at: new Date(toNumber(r.at)).toISOString(),
      actor: full ? r.actor : withoutAccounts(r.actor),
      action: r.action,
      from: r.from_status,
      to: r.to_status,
      detail: JSON.parse(full ? r.detail : withoutAccounts(r.detail)) as Record<string, unknown>,
    }));
    const last = items.at(-1);
    return {
      items,
      nextCursor: rows.length > limit && last ? encodeCursor(String(last.id)) : null,
    };
  }

  /** Network totals: from the in-memory counts when given, else counted in the database. */
  async stats(): Promise<NetworkStats> {
    if (this.counts !== undefined) return this.counts.stats();
    return statsFromBuckets(await countBuckets(this.db));
  }
}

/** An account id, however it is written (`account:acct_…`, `acct_…`), as plain `account`. */
const ACCOUNT_ID = /(?:account:)?acct_[0-9a-z]{26}/g;

function withoutAccounts(text: string): string {
  return text.replace(ACCOUNT_ID, "account");
}

export function toNodeView(row: NodeRow): NodeView {
  // Validated when the worker registered it, and the route's response schema checks the view on
  // the way out: parsing it with zod here as well cost ~60 µs a row, the biggest share of a
  // 50-node page (bench/RESULTS.md).
  const hardware = JSON.parse(row.hardware) as HardwareReport;
  const lastSeen = toNumberOrNull(row.last_seen_at);
  return {
    id: row.id,
    deviceId: row.device_id,
    status: row.status as NodeStatus,
    region: row.region,
    zone: row.zone,
    gpus: hardware.gpus.map((g) => ({
      index: g.index,
      name: g.name,
      model: gpuModelByName(g.name)?.id ?? null,
      memoryTotalMiB: g.memoryTotalMiB,
    })),
    gpuModel: row.gpu_model,
    gpuCount: row.gpu_count,
    vramMiB: row.vram_mib,
    cpu: hardware.cpu,
    memoryTotalMiB: hardware.memoryTotalMiB,
    diskFreeMiB: hardware.diskFreeMiB,
    os: [hardware.os.distro || hardware.os.platform, hardware.os.release].join(" ").trim(),
    engines: hardware.engines ?? null,
    flags: row.flags === "" ? [] : row.flags.split(","),
    verified: row.verified_at !== null,
    uptime: { "24h": row.uptime_24h, "7d": row.uptime_7d, "30d": row.uptime_30d },
    reputation: row.reputation,
    pricePerHourUsd:
      row.effective_price_per_hour === null
        ? null
        : formatMoney(units(row.effective_price_per_hour)),
    registeredAt: new Date(toNumber(row.registered_at)).toISOString(),
    lastSeenAt: lastSeen === null ? null : new Date(lastSeen).toISOString(),
  };
}

function encodeCursor(key: string): string {
  return Buffer.from(key).toString("base64url");
}

function decodeCursor(cursor: string): string {
  const key = Buffer.from(cursor, "base64url").toString();
  if (!/^[0-9a-z_]{1,64}$/.test(key)) {
    throw new TandemError(ErrorCode.VALIDATION_FAILED, "malformed cursor", { details: { cursor } });
  }
  return key;
}

/** A history cursor is the last row's serial id; anything else is refused before it reaches SQL. */
function decodeHistoryCursor(cursor: string): number {
  const key = decodeCursor(cursor);
  if (!/^[0-9]{1,15}$/.test(key)) {
    throw new TandemError(ErrorCode.VALIDATION_FAILED, "malformed cursor", { details: { cursor } });
  }
  return Number(key);
}
