import type { ColumnType } from "kysely";
import type { Int8 } from "./schema.ts";

type Units = ColumnType<number | string | bigint, bigint, never>;

/** One hour's reward block (migration 0029). */
export interface RewardBlocksTable {
  hour: Int8;
  starts_at: Int8;
  emission: Units;
  minted: Units;
  capacity: Units;
  nominated: number;
  rewarded: number;
  transaction_id: string | null;
  created_at: Int8;
}

/** A node a block nominated: rewarded (`reason` null) or refused, and why (0029). */
export interface RewardBlockNodesTable {
  hour: Int8;
  node_id: string;
  account_id: string;
  reason: string | null;
  capacity: Units;
  staked: Units;
  share: Units;
  commission: Units;
}

export interface RewardTables {
  reward_blocks: RewardBlocksTable;
  reward_block_nodes: RewardBlockNodesTable;
}
