import type { ColumnType } from "kysely";
import type { ClusterTables } from "./cluster-schema.ts";
import type { LedgerTables } from "./ledger-schema.ts";
import type { ReplicaTables } from "./replica-schema.ts";
import type { RewardTables } from "./reward-schema.ts";
import type { SolanaTables } from "./solana-schema.ts";
import type { StakeTables } from "./stake-schema.ts";

/**
 * Table types for Kysely. One schema serves SQLite and PostgreSQL: ids are text, times are epoch
 * milliseconds in 64-bit integer columns, JSON is text. PostgreSQL returns int8 as a string, so
 * 64-bit columns read as `Int8` and go through `toNumber` (rows.ts) before use.
 */
export type Int8 = ColumnType<number | string | bigint, number, number>;
/** An auto-increment key: assigned by the database, never written. */
type Serial = ColumnType<number | string | bigint, never, never>;
type NullableInt8 = ColumnType<number | string | bigint | null, number | null, number | null>;

export interface AccountsTable {
  id: string;
  roles: string;
  created_at: Int8;
  disabled_at: NullableInt8;
}

export interface ApiKeysTable {
  id: string;
  account_id: string;
  key_hash: string;
  prefix: string;
  created_at: Int8;
  revoked_at: NullableInt8;
}

/** A supplier's single-use, expiring enrollment token; only its hash is stored (migration 0017). */
export interface EnrollmentTokensTable {
  id: string;
  account_id: string;
  token_hash: string;
  created_at: Int8;
  expires_at: Int8;
  used_at: NullableInt8;
  /** The device whose registration consumed the token. */
  device_id: string | null;
}

export interface DevicesTable {
  id: string;
  account_id: string;
  public_key: string;
  status: string;
  created_at: Int8;
  revoked_at: NullableInt8;
}

export interface NodesTable {
  id: string;
  device_id: string;
  account_id: string;
  status: string;
  region: string;
  zone: string;
  hardware: string;
  gpu_model: string | null;
  gpu_count: number;
  vram_mib: number;
  flags: string;
  verified_at: NullableInt8;
  registered_at: Int8;
  last_seen_at: NullableInt8;
  uptime_24h: number;
  uptime_7d: number;
  uptime_30d: number;
  /** Reputation score 0..100 (src/core/reputation.ts), refreshed with uptime and on new evidence. */
  reputation: ColumnType<number, number | undefined, number>;
  /** The supplier's own price per node-hour, micro-dollars (market mode); null: the catalog's. */
  price_per_hour: ColumnType<
    number | string | bigint | null,
    bigint | null | undefined,
    bigint | null
  >;
  /** 1 while the worker drains (`tandem worker drain`): no new lease is placed on it. */
  draining: ColumnType<number, number | undefined, number>;
  /**
   * The node's price per hour under `node_pricing`, micro-dollars; null where the catalog cannot
   * price it. Set by a trigger from gpu_model, gpu_count and price_per_hour (migration 0013).
   */
  effective_price_per_hour: ColumnType<number | string | bigint | null, never, never>;
}

/** The pricing `nodes.effective_price_per_hour` was computed under: one row, id 1 (0013). */
export interface NodePricingTable {
  id: number;
  mode: string;
  /** A CPU-only node's price per hour, micro-dollars. */
  cpu_node_hour: Int8;
}

/** The catalog's price per GPU-hour by model, micro-dollars (0013). */
export interface NodeGpuPricesTable {
  model: string;
  per_gpu_hour: Int8;
}

export interface NodeHistoryTable {
  id: Serial;
  node_id: string;
  at: Int8;
  actor: string;
  action: string;
  from_status: string | null;
  to_status: string | null;
  detail: string;
}

export interface NodeIntervalsTable {
  id: Serial;
  node_id: string;
  start_ms: Int8;
  end_ms: NullableInt8;
}

export interface GpuUuidsTable {
  uuid: string;
  node_id: string;
}

export interface Database
  extends ClusterTables, LedgerTables, ReplicaTables, RewardTables, SolanaTables, StakeTables {
  accounts: AccountsTable;
  api_keys: ApiKeysTable;
  devices: DevicesTable;
  nodes: NodesTable;
  node_history: NodeHistoryTable;
  node_intervals: NodeIntervalsTable;
  gpu_uuids: GpuUuidsTable;
  node_pricing: NodePricingTable;
  node_gpu_prices: NodeGpuPricesTable;
  enrollment_tokens: EnrollmentTokensTable;
}
