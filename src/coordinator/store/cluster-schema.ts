import type { ColumnType } from "kysely";
import type { Int8 } from "./schema.ts";

type NullableInt8 = ColumnType<number | string | bigint | null, number | null, number | null>;
type Serial = ColumnType<number | string | bigint, never, never>;

/** Clusters, their nodes (leases), events and logs. Money columns are smallest units (int8). */
export interface ClustersTable {
  id: string;
  account_id: string;
  kind: string;
  status: string;
  /** The deploy request as accepted (filters, command, env, image), JSON. */
  spec: string;
  node_count: number;
  hours: number;
  currency: string;
  idempotency_key: string | null;
  created_at: Int8;
  started_at: NullableInt8;
  ends_at: NullableInt8;
  ended_at: NullableInt8;
}

export interface ClusterNodesTable {
  cluster_id: string;
  node_id: string;
  supplier_account_id: string;
  rank: number;
  role: string;
  region: string;
  zone: string;
  status: string;
  /** Set while reserved: the worker must accept before this instant or the reservation lapses. */
  reserved_until: NullableInt8;
  /** 1 while the node is held by this cluster: a unique index on (node_id) where active = 1 makes double-booking impossible. */
  active: number;
  price_per_hour: Int8;
  exit_code: number | null;
  started_at: NullableInt8;
  ended_at: NullableInt8;
}

export interface ClusterEventsTable {
  id: Serial;
  cluster_id: string;
  at: Int8;
  type: string;
  detail: string;
}

export interface ClusterLogsTable {
  id: Serial;
  cluster_id: string;
  rank: number;
  stream: string;
  at: Int8;
  text: string;
}

export interface ClusterTables {
  clusters: ClustersTable;
  cluster_nodes: ClusterNodesTable;
  cluster_events: ClusterEventsTable;
  cluster_logs: ClusterLogsTable;
}
