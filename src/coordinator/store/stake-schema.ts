import type { ColumnType } from "kysely";
import type { Int8 } from "./schema.ts";

type NullableInt8 = ColumnType<number | string | bigint | null, number | null, number | null>;

/** One stake position (migration 0024): its TDM sits on its own ledger escrow account. */
export interface StakesTable {
  id: string;
  node_id: string;
  account_id: string;
  /** TDM smallest units; read back as text (CAST) where exactness matters. */
  amount: ColumnType<number | string | bigint, bigint, never>;
  status: string;
  created_at: Int8;
  create_key: string;
  unstaked_at: NullableInt8;
  unstake_key: string | null;
  withdrawable_at: NullableInt8;
  withdrawn_at: NullableInt8;
}

/** A node's commission on its rewards, basis points (0024); no row = the configured default. */
export interface NodeCommissionsTable {
  node_id: string;
  commission_bps: number;
  updated_at: Int8;
}

export interface StakeTables {
  stakes: StakesTable;
  node_commissions: NodeCommissionsTable;
}
