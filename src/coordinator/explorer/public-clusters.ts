import { ErrorCode, TandemError } from "../../core/errors.ts";
import { CPU_ONLY } from "../../protocol/clusters.ts";
import {
  PUBLIC_CLUSTER_EVENTS,
  type PublicCluster,
  type PublicClusterList,
} from "../../protocol/network.ts";
import { toNumber, toNumberOrNull } from "../store/rows.ts";
import type { ReadDb } from "../store/transaction.ts";

const ACTIVE_STATUSES = ["pending", "provisioning", "running"] as const;
const PUBLIC_TYPES = Object.keys(PUBLIC_CLUSTER_EVENTS) as Array<
  keyof typeof PUBLIC_CLUSTER_EVENTS
>;
/** Public events kept per cluster in a list (the newest); one cluster's page has them all. */
const EVENTS_PER_LISTED_CLUSTER = 20;

const iso = (ms: number | null) => (ms === null ? null : new Date(ms).toISOString());

/**
 * The clusters as anyone may see them (`GET /v1/network/clusters`): what runs, on how many nodes
 * of which model and where, and how it fared (failovers, takeovers, scaling) — never the owner,
 * the command, the environment or the logs. A page costs three indexed queries: the clusters,
 * their leases joined to the nodes, and their public events.
 */
export class PublicClusters {
  constructor(private readonly db: ReadDb) {}

  async list(
    filter: { status?: string | undefined },
    limit: number,
    cursor?: string,
  ): Promise<PublicClusterList> {
    let query = this.db
      .selectFrom("clusters")
      .select(["id", "kind", "status", "created_at", "started_at", "ended_at"])
      .orderBy("id", "desc")
      .limit(limit + 1);
    if (filter.status !== undefined) query = query.where("status", "=", filter.status);
    if (cursor !== undefined) query = query.where("id", "<", decodeCursor(cursor));
    const rows = await query.execute();
    const page = rows.slice(0, limit);
    const items = await this.views(page, EVENTS_PER_LISTED_CLUSTER);
    const active = await this.db
      .selectFrom("clusters")
      .select("status")
      .select((eb) => eb.fn.countAll<number | string>().as("n"))
      .where("status", "in", ACTIVE_STATUSES)
      .groupBy("status")
      .execute();
    const last = page.at(-1);
    return {
      items,
      nextCursor: rows.length > limit && last ? Buffer.from(last.id).toString("base64url") : null,
      active: Object.fromEntries(active.map((r) => [r.status, toNumber(r.n)])),
    };
  }

  async get(clusterId: string): Promise<PublicCluster> {
    const row = await this.db
      .selectFrom("clusters")
      .select(["id", "kind", "status", "created_at", "started_at", "ended_at"])
      .where("id", "=", clusterId)
      .executeTakeFirst();
    if (row === undefined) throw new TandemError(ErrorCode.NOT_FOUND, `no cluster ${clusterId}`);
    return (await this.views([row], Infinity))[0]!;
  }

  private async views(
    rows: ReadonlyArray<{
      id: string;
      kind: string;
      status: string;
      created_at: number | string | bigint;
      started_at: number | string | bigint | null;
      ended_at: number | string | bigint | null;
    }>,
    eventsPerCluster: number,
  ): Promise<PublicCluster[]> {
    if (rows.length === 0) return [];
    const ids = rows.map((r) => r.id);
    const leases = await this.db
      .selectFrom("cluster_nodes")
      .innerJoin("nodes", "nodes.id", "cluster_nodes.node_id")
      .select([
        "cluster_nodes.cluster_id as clusterId",
        "cluster_nodes.seq",
        "cluster_nodes.node_id as nodeId",
        "cluster_nodes.rank",
        "cluster_nodes.role",
        "cluster_nodes.region",
        "cluster_nodes.active",
        "nodes.gpu_model as gpuModel",
        "nodes.gpu_count as gpuCount",
      ])
      .where("cluster_nodes.cluster_id", "in", ids)
      .orderBy("cluster_nodes.seq")
      .execute();
    const events = await this.db
      .selectFrom("cluster_events")
      .select(["cluster_id", "at", "type", "detail"])
      .where("cluster_id", "in", ids)
      .where("type", "in", PUBLIC_TYPES)
      .orderBy("id")
      .execute();
    return rows.map((row) => {
      const all = leases.filter((l) => l.clusterId === row.id);
      const held = all.filter((l) => l.active === 1);
      // An ended cluster holds nothing: show what each rank ran on last.
      const shown = lastPerNode(held.length > 0 ? held : lastPerRank(all));
      const models = new Map<string, number>();
      for (const l of shown) {
        const model = l.gpuModel ?? (l.gpuCount === 0 ? CPU_ONLY : null);
        if (model !== null) models.set(model, (models.get(model) ?? 0) + 1);
      }
      const gpuModel = [...models].sort((a, b) => b[1] - a[1] || a[0].localeCompare(b[0]))[0]?.[0];
      return {
        id: row.id,
        kind: row.kind as PublicCluster["kind"],
        status: row.status as PublicCluster["status"],
        nodes: shown.length,
        standby: shown.filter((l) => l.role === "standby").length,
        gpuModel: gpuModel ?? null,
        gpus: shown.reduce((sum, l) => sum + l.gpuCount, 0),
        regions: [...new Set(shown.map((l) => l.region))].sort(),
        createdAt: new Date(toNumber(row.created_at)).toISOString(),
        startedAt: iso(toNumberOrNull(row.started_at)),
        endedAt: iso(toNumberOrNull(row.ended_at)),
        events: events
          .filter((e) => e.cluster_id === row.id)
          .slice(-eventsPerCluster)
          .map((e) => ({
            at: new Date(toNumber(e.at)).toISOString(),
            type: e.type,
            detail: publicDetail(e.type, e.detail),
          })),
      };
    });
  }
}

/** Each rank's last lease (and each standby), for a cluster that no longer holds any. */
function lastPerRank<T extends { rank: number | null; seq: number }>(leases: readonly T[]): T[] {
  const byRank = new Map<string, T>();
  for (const l of leases) byRank.set(l.rank === null ? `s${l.seq}` : `r${l.rank}`, l);
  return [...byRank.values()];
}

/** One lease per node, its latest: a promoted standby holds its old lease and its rank's new one. */
function lastPerNode<T extends { nodeId: string }>(leases: readonly T[]): T[] {
  return [...new Map(leases.map((l) => [l.nodeId, l])).values()];
}

/** Keeps only the fields {@link PUBLIC_CLUSTER_EVENTS} allows for the event type. */
export function publicDetail(type: string, json: string): Record<string, unknown> {
  const allowed: readonly string[] =
    PUBLIC_CLUSTER_EVENTS[type as keyof typeof PUBLIC_CLUSTER_EVENTS] ?? [];
  const detail = JSON.parse(json) as Record<string, unknown>;
  return Object.fromEntries(allowed.filter((k) => k in detail).map((k) => [k, detail[k]]));
}

function decodeCursor(cursor: string): string {
  const key = Buffer.from(cursor, "base64url").toString();
  if (!/^clu_[0-9a-z]{26}$/.test(key)) {
    throw new TandemError(ErrorCode.VALIDATION_FAILED, "malformed cursor", { details: { cursor } });
  }
  return key;
}
