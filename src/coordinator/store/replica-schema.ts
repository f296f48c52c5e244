import type { ColumnType } from "kysely";

type Int8 = ColumnType<number | string | bigint, number, number>;
type NullableInt8 = ColumnType<number | string | bigint | null, number | null, number | null>;

/** Which replica leads the singleton loops, and the term that fences them (migration 0027). */
export interface CoordinatorLeaderTable {
  /** Always 1: one row. */
  id: number;
  term: Int8;
  holder: string | null;
  elected_at: NullableInt8;
}

/** A replica's last sign of life (migration 0028). */
export interface CoordinatorReplicasTable {
  id: string;
  started_at: Int8;
  alive_at: Int8;
}

/** Which replica holds a worker's WebSocket (migration 0028). */
export interface WorkerPresenceTable {
  node_id: string;
  replica_id: string;
  /** Where the worker connected from; null for a node a leader adopted from a dead replica. */
  address: string | null;
  behind_nat: number;
  connected_at: Int8;
}

/** A command for a worker connected to another replica, waiting for it (migration 0028). */
export interface ReplicaCommandsTable {
  id: ColumnType<number | string | bigint, never, never>;
  replica_id: string;
  node_id: string;
  /** The CoordinatorMessage, JSON. */
  message: string;
  created_at: Int8;
}

export interface ReplicaTables {
  coordinator_leader: CoordinatorLeaderTable;
  coordinator_replicas: CoordinatorReplicasTable;
  worker_presence: WorkerPresenceTable;
  replica_commands: ReplicaCommandsTable;
}
