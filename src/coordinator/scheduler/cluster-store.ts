import type { Kysely, Selectable } from "kysely";
import type { ClusterStatus } from "../../core/cluster-status.ts";
import { ErrorCode, TandemError } from "../../core/errors.ts";
import { formatMoney, units, type Money } from "../../core/money.ts";
import { limitsWithin } from "../../core/rank-limits.ts";
import type { Autoscale, ClusterView, LogLine, TaskView } from "../../protocol/clusters.ts";
import type { RankLimits, RankLimitsAsk } from "../../protocol/hardware.ts";
import type { ClusterNodesTable, ClustersTable } from "../store/cluster-schema.ts";
import type { Database } from "../store/schema.ts";
import { toNumber, toNumberOrNull } from "../store/rows.ts";
import { hardwareFacts } from "./inventory.ts";
import type { ReadDb } from "../store/transaction.ts";

const iso = (ms: number | null) => (ms === null ? null : new Date(ms).toISOString());

/** Formats smallest units as the wire's 6-decimal string. */
export function formatUnits(amount: Money): string {
  return formatMoney(amount);
}

/** The stored spec of a cluster: what the consumer asked for, as accepted. */
export interface ClusterSpec {
  command: string[];
  env: Record<string, string>;
  image: string | null;
  filters: Record<string, unknown>;
  /** Names of sealed secrets (./cluster-secrets.ts); absent on clusters deployed without. */
  secretNames?: string[];
  /** The per-rank limits asked at deploy (absent in clusters from before limits: none). */
  limits?: RankLimitsAsk | undefined;
  /**
   * SHA-256 of the deploy request as accepted (canonical JSON), kept when the deploy carried an
   * `Idempotency-Key`: a retry with the same key and another request is refused.
   */
  requestHash?: string;
}

export async function appendClusterEvent(
  db: Kysely<Database>,
  clusterId: string,
  atMs: number,
  type: string,
  detail: Record<string, unknown> = {},
): Promise<void> {
  await db
    .insertInto("cluster_events")
    .values({ cluster_id: clusterId, at: atMs, type, detail: JSON.stringify(detail) })
    .execute();
}

export async function loadCluster(db: ReadDb, clusterId: string) {
  const cluster = await db
    .selectFrom("clusters")
    .selectAll()
    .where("id", "=", clusterId)
    .executeTakeFirst();
  if (cluster === undefined) throw new TandemError(ErrorCode.NOT_FOUND, `no cluster ${clusterId}`);
  const nodes = await db
    .selectFrom("cluster_nodes")
    .selectAll()
    .where("cluster_id", "=", clusterId)
    .orderBy("seq")
    .execute();
  return loaded(cluster, nodes);
}

/** Every cluster in `status`, as `loadCluster` answers each: two statements for all of them. */
export async function loadClustersIn(db: ReadDb, status: ClusterStatus): Promise<LoadedCluster[]> {
  const clusters = await db
    .selectFrom("clusters")
    .selectAll()
    .where("status", "=", status)
    .execute();
  const nodes = await db
    .selectFrom("cluster_nodes")
    .innerJoin("clusters", "clusters.id", "cluster_nodes.cluster_id")
    .selectAll("cluster_nodes")
    .where("clusters.status", "=", status)
    .orderBy("cluster_nodes.cluster_id")
    .orderBy("cluster_nodes.seq")
    .execute();
  const byCluster = new Map<string, typeof nodes>();
  for (const n of nodes) {
    const list = byCluster.get(n.cluster_id);
    if (list === undefined) byCluster.set(n.cluster_id, [n]);
    else list.push(n);
  }
  // A cluster that changed status between the two reads is left for the next pass.
  return clusters.filter((c) => byCluster.has(c.id)).map((c) => loaded(c, byCluster.get(c.id)!));
}

function loaded(
  cluster: Selectable<ClustersTable>,
  nodes: ReadonlyArray<Selectable<ClusterNodesTable>>,
) {
  return {
    id: cluster.id,
    accountId: cluster.account_id,
    kind: cluster.kind as ClusterView["kind"],
    status: cluster.status as ClusterStatus,
    spec: JSON.parse(cluster.spec) as ClusterSpec,
    hours: cluster.hours,
    shadow: cluster.shadow,
    autoscale: cluster.autoscale === null ? null : (JSON.parse(cluster.autoscale) as Autoscale),
    currency: cluster.currency as ClusterView["currency"],
    createdAtMs: toNumber(cluster.created_at),
    startedAtMs: toNumberOrNull(cluster.started_at),
    endsAtMs: toNumberOrNull(cluster.ends_at),
    endedAtMs: toNumberOrNull(cluster.ended_at),
    /** Every lease the cluster has held, in order: ranks that failed over appear once per node. */
    nodes: nodes.map((n) => ({
      seq: n.seq,
      nodeId: n.node_id,
      supplierAccountId: n.supplier_account_id,
      rank: n.rank,
      attempt: n.attempt,
      role: n.role as "head" | "worker" | "standby",
      region: n.region,
      zone: n.zone,
      status: n.status as ClusterView["nodes"][number]["status"],
      active: n.active === 1,
      reservedUntilMs: toNumberOrNull(n.reserved_until),
      pricePerHour: units(n.price_per_hour),
      nodePricePerHour: units(n.node_price_per_hour),
      exitCode: n.exit_code,
      startedAtMs: toNumberOrNull(n.started_at),
      billedUntilMs: toNumberOrNull(n.billed_until),
      idleSinceMs: toNumberOrNull(n.idle_since),
    })),
  };
}
export type LoadedCluster = ReturnType<typeof loaded>;
export type LoadedLease = LoadedCluster["nodes"][number];

export async function clusterView(db: ReadDb, clusterId: string): Promise<ClusterView> {
  const cluster = await loadCluster(db, clusterId);
  const events = await db
    .selectFrom("cluster_events")
    .selectAll()
    .where("cluster_id", "=", clusterId)
    .orderBy("id")
    .execute();
  const ask = cluster.spec.limits ?? {};
  const offers = await nodeOffers(db, [...new Set(cluster.nodes.map((n) => n.nodeId))]);
  return {
    id: cluster.id,
    kind: cluster.kind,
    status: cluster.status,
    hours: cluster.hours,
    shadow: cluster.shadow,
    autoscale: cluster.autoscale,
    currency: cluster.currency,
    command: cluster.spec.command,
    limits: ask,
    nodes: cluster.nodes.map((n) => ({
      nodeId: n.nodeId,
      rank: n.rank,
      zone: n.zone,
      region: n.region,
      role: n.role,
      status: n.status,
      active: n.active,
      exitCode: n.exitCode,
      pricePerHour: formatUnits(n.pricePerHour),
      limits: rankLimitsOn(offers.get(n.nodeId), ask),
    })),
    events: events.map((e) => ({
      at: new Date(toNumber(e.at)).toISOString(),
      type: e.type,
      detail: JSON.parse(e.detail) as Record<string, unknown>,
    })),
    createdAt: new Date(cluster.createdAtMs).toISOString(),
    startedAt: iso(cluster.startedAtMs),
    endsAt: iso(cluster.endsAtMs),
    endedAt: iso(cluster.endedAtMs),
  };
}

/** The per-rank offer of each node in its stored hardware report (none: a worker before limits). */
async function nodeOffers(
  db: ReadDb,
  nodeIds: readonly string[],
): Promise<Map<string, RankLimits | undefined>> {
  if (nodeIds.length === 0) return new Map();
  const rows = await db
    .selectFrom("nodes")
    .select(["id", "hardware"])
    .where("id", "in", nodeIds)
    .execute();
  return new Map(rows.map((r) => [r.id, hardwareFacts(r.hardware).limits]));
}

/** What a rank on a node with `offer` runs limited to; null when the node's offer is unknown. */
function rankLimitsOn(offer: RankLimits | undefined, ask: RankLimitsAsk): RankLimits | null {
  if (offer === undefined) return null;
  const within = limitsWithin(offer, ask);
  return within.ok ? { ...within.limits } : { ...offer };
}

export async function readLogs(
  db: ReadDb,
  clusterId: string,
  query: { after?: number | undefined; rank?: number | undefined; limit: number },
): Promise<LogLine[]> {
  let q = db
    .selectFrom("cluster_logs")
    .selectAll()
    .where("cluster_id", "=", clusterId)
    .orderBy("id")
    .limit(query.limit);
  if (query.after !== undefined) q = q.where("id", ">", query.after);
  if (query.rank !== undefined) q = q.where("rank", "=", query.rank);
  const rows = await q.execute();
  return rows.map((r) => ({
    seq: toNumber(r.id),
    rank: r.rank,
    stream: r.stream as "stdout" | "stderr",
    at: new Date(toNumber(r.at)).toISOString(),
    text: r.text,
  }));
}

/** An autoscaled cluster's tasks, oldest first (only task `seq` when given). */
export async function readTasks(db: ReadDb, clusterId: string, seq?: number): Promise<TaskView[]> {
  let query = db.selectFrom("cluster_tasks").selectAll().where("cluster_id", "=", clusterId);
  if (seq !== undefined) query = query.where("seq", "=", seq);
  return (await query.orderBy("seq").execute()).map(taskView);
}

/**
 * A page of a cluster's tasks in seq order, after the task `cursor` names: on the primary key
 * (cluster_id, seq), so a page costs its own rows however long the queue.
 */
export async function readTaskPage(
  db: ReadDb,
  clusterId: string,
  page: { limit: number; cursor?: string | undefined },
): Promise<{ items: TaskView[]; nextCursor: string | null }> {
  let query = db
    .selectFrom("cluster_tasks")
    .selectAll()
    .where("cluster_id", "=", clusterId)
    .orderBy("seq")
    .limit(page.limit + 1);
  if (page.cursor !== undefined) query = query.where("seq", ">", Number(page.cursor));
  const rows = await query.execute();
  const items = rows.slice(0, page.limit).map(taskView);
  return {
    items,
    nextCursor: rows.length > page.limit ? String(items.at(-1)!.seq) : null,
  };
}

function taskView(t: Selectable<Database["cluster_tasks"]>): TaskView {
  return {
    seq: t.seq,
    command: JSON.parse(t.command) as string[],
    status: t.status as TaskView["status"],
    nodeId: t.node_id,
    exitCode: t.exit_code,
    submittedAt: new Date(toNumber(t.submitted_at)).toISOString(),
    startedAt: iso(toNumberOrNull(t.started_at)),
    endedAt: iso(toNumberOrNull(t.ended_at)),
  };
}
