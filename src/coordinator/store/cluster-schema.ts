import type { ColumnType } from "kysely";
import type { Int8 } from "./schema.ts";

type NullableInt8 = ColumnType<number | string | bigint | null, number | null, number | null>;
type Serial = ColumnType<number | string | bigint, never, never>;
/** An amount in smallest units (int8): written as `bigint` only (a JS number loses units above 2^53). */
type MoneyColumn = ColumnType<number | string | bigint, bigint, bigint>;

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
  /** Standby (shadow) nodes asked for beside `node_count`. */
  shadow: ColumnType<number, number | undefined, number>;
  /** JSON `{ min, max, tasksPerNode }` for an autoscaled batch cluster; null otherwise. */
  autoscale: ColumnType<string | null, string | null | undefined, string | null>;
}

/** One lease: a node held by a cluster. A rank that fails over gets a new lease on another node. */
export interface ClusterNodesTable {
  cluster_id: string;
  /** The lease's number within its cluster (its ledger lease id is `<cluster>/<seq>`). */
  seq: number;
  node_id: string;
  supplier_account_id: string;
  /** Null for a standby holding no rank. */
  rank: number | null;
  /** The run of the rank this lease serves; job messages from another attempt are ignored. */
  attempt: ColumnType<number, number | undefined, number>;
  role: string;
  region: string;
  zone: string;
  status: string;
  /** Set while reserved: the worker must accept before this instant or the reservation lapses. */
  reserved_until: NullableInt8;
  /** 1 while the node is held by this cluster: a unique index on (node_id) where active = 1 makes double-booking impossible. */
  active: number;
  /** What this lease is billed per hour (a standby's rate while it stands by). */
  price_per_hour: MoneyColumn;
  /** The node's own price per hour, in the cluster's currency, when it was reserved. */
  node_price_per_hour: MoneyColumn;
  exit_code: number | null;
  /** When the lease began serving (billing starts no earlier than the cluster's start). */
  started_at: NullableInt8;
  /** When billing stopped before the cluster's end (the node was lost or handed over). */
  billed_until: NullableInt8;
  ended_at: NullableInt8;
  end_reason: string | null;
  /** In an autoscaled cluster: since when the lease has had no task (it may be released). */
  idle_since: ColumnType<number | string | bigint | null, number | null | undefined, number | null>;
}

/** A task of an autoscaled batch cluster: one run of a command on one of its nodes. */
export interface ClusterTasksTable {
  cluster_id: string;
  seq: number;
  /** argv, JSON. */
  command: string;
  status: string;
  /** The lease running it (while running, and after). */
  lease_seq: number | null;
  node_id: string | null;
  exit_code: number | null;
  submitted_at: Int8;
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

/** One status change of a cluster (`lease_seq` null) or of one of its leases (migration 0023). */
export interface ClusterHistoryTable {
  id: Serial;
  cluster_id: string;
  lease_seq: number | null;
  /** Null where the row was created. */
  from_status: string | null;
  to_status: string;
  reason: string;
  at: Int8;
}

export interface ClusterLogsTable {
  id: Serial;
  cluster_id: string;
  rank: number;
  stream: string;
  at: Int8;
  text: string;
}

/** One sealed secret of a cluster for one node: ciphertext only (src/protocol/sealed-secrets.ts). */
export interface ClusterSecretsTable {
  cluster_id: string;
  node_id: string;
  name: string;
  /** The sealed box, base64url; only the node's worker can open it. */
  box: string;
  created_at: Int8;
}

/** One rank's WireGuard half of its cluster's overlay (migration 0020). */
export interface RankNetworksTable {
  cluster_id: string;
  rank: number;
  /** The rank's attempt that made this key; a newer attempt replaces the row. */
  attempt: number;
  node_id: string;
  public_key: string;
  /** Where peers reach it; null behind NAT (it opens the path itself). */
  endpoint_address: string | null;
  endpoint_port: number;
  updated_at: Int8;
}

/**
 * A cluster's engine TLS material (PEM), made at its first start (scheduler/cluster-tls.ts); the
 * key travels sealed to each node. Removed when the cluster ends.
 */
export interface ClusterTlsTable {
  cluster_id: string;
  ca_cert: string;
  cert: string;
  key: string;
  /** When the certificates expire (ms since the epoch). */
  not_after: Int8;
  created_at: Int8;
}

export interface ClusterTables {
  clusters: ClustersTable;
  cluster_nodes: ClusterNodesTable;
  cluster_events: ClusterEventsTable;
  cluster_history: ClusterHistoryTable;
  cluster_logs: ClusterLogsTable;
  cluster_tasks: ClusterTasksTable;
  cluster_secrets: ClusterSecretsTable;
  rank_networks: RankNetworksTable;
  cluster_tls: ClusterTlsTable;
}
