/** Leases and the messages that start their ranks: shared by the scheduler and its failover. */
import type { Kysely } from "kysely";
import { mulDivFloor, units, type Money } from "../../core/money.ts";
import type { ClusterView } from "../../protocol/clusters.ts";
import type { JobNetworkSpec } from "../../protocol/cluster-network.ts";
import type { JobStartTls } from "../../protocol/cluster-tls.ts";
import type { RankLimitsAsk } from "../../protocol/hardware.ts";
import type { Database } from "../store/schema.ts";
import type { LoadedCluster } from "./cluster-store.ts";

/** A node picked for a lease, priced in the cluster's currency. */
export interface PlacedNode {
  nodeId: string;
  accountId: string;
  region: string;
  zone: string;
  price: Money;
}

/** The ledger's id for a lease: the cluster and the lease's number in it. */
export function leaseId(clusterId: string, seq: number): string {
  return `${clusterId}/${seq}`;
}

/** The columns every new lease row starts with; the caller adds rank, role and status. */
export function leaseRow(clusterId: string, seq: number, node: PlacedNode, billedPerHour: Money) {
  return {
    cluster_id: clusterId,
    seq,
    node_id: node.nodeId,
    supplier_account_id: node.accountId,
    region: node.region,
    zone: node.zone,
    active: 1,
    price_per_hour: billedPerHour,
    node_price_per_hour: node.price,
    exit_code: null,
    billed_until: null,
    ended_at: null,
    end_reason: null,
  };
}

/** The `job-start` of one rank; the head (rank 0) gets no address and reports its port. */
export function startMessage(
  clusterId: string,
  spec: {
    kind: ClusterView["kind"];
    command: string[];
    env: Record<string, string>;
    image: string | null;
    /** The per-rank limits asked at deploy; the worker applies its offer where none is asked. */
    limits?: RankLimitsAsk | undefined;
    /** The rank's network namespace (./cluster-network.ts `jobNetworkSpec`). */
    network: JobNetworkSpec;
  },
  rank: number,
  attempt: number,
  worldSize: number,
  head: { address: string; port: number } | null,
  /** The boxes sealed to the node this start goes to (./cluster-secrets.ts), if any. */
  secrets?: Record<string, string>,
  /** The cluster's engine TLS material for that node (./cluster-tls.ts), for dask and ray. */
  tls?: JobStartTls,
) {
  return {
    type: "job-start" as const,
    clusterId,
    rank,
    attempt,
    worldSize,
    kind: spec.kind,
    command: spec.command,
    env: spec.env,
    image: spec.image,
    head: rank === 0 ? null : head,
    network: spec.network,
    ...(secrets === undefined ? {} : { secrets }),
    ...(tls === undefined ? {} : { tls }),
    ...(spec.limits === undefined || Object.keys(spec.limits).length === 0
      ? {}
      : { limits: spec.limits }),
  };
}

/** The cluster's world size: its ranks (standbys hold none). */
export function rankCount(cluster: LoadedCluster): number {
  return new Set(cluster.nodes.filter((n) => n.rank !== null).map((n) => n.rank)).size;
}

/** The head's rendezvous address from the cluster's latest `head-ready` event (after a restart). */
export async function headOf(
  db: Kysely<Database>,
  clusterId: string,
): Promise<{ address: string; port: number } | undefined> {
  const row = await db
    .selectFrom("cluster_events")
    .select("detail")
    .where("cluster_id", "=", clusterId)
    .where("type", "=", "head-ready")
    .orderBy("id", "desc")
    .executeTakeFirst();
  if (row === undefined) return undefined;
  const detail = JSON.parse(row.detail) as { address: string; port: number };
  return { address: detail.address, port: detail.port };
}

/** Micro-dollars (placement's prices) → smallest units of a currency at the oracle's rate, down. */
export function toCurrency(microUsd: bigint, unitsPerUsd: bigint): Money {
  return mulDivFloor(units(microUsd), unitsPerUsd, 1_000_000n);
}

/** Smallest units of a currency → micro-dollars at the oracle's rate, down. */
export function toUsd(amount: Money, unitsPerUsd: bigint): bigint {
  return mulDivFloor(amount, 1_000_000n, unitsPerUsd);
}
