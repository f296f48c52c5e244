import type { Int8 } from "./schema.ts";

/** An account's deposit address for one currency (migration 0030). */
export interface SolanaDepositAddressesTable {
  account_id: string;
  currency: string;
  owner: string;
  mint: string;
  address: string;
  created_at: Int8;
}

/** The newest signature handled per watched token account (0030). */
export interface SolanaWatchCursorsTable {
  address: string;
  last_signature: string;
  updated_at: Int8;
}

/** One token transfer into a watched account: credited (`reason` null) or refused (0030). */
export interface SolanaDepositsTable {
  signature: string;
  instruction: string;
  slot: Int8;
  address: string;
  account_id: string;
  mint: string;
  currency: string | null;
  /** The on-chain amount in the mint's smallest units, as decimal text (a u64 may pass i64). */
  amount: string;
  reason: string | null;
  transaction_id: string | null;
  created_at: Int8;
}

export interface SolanaTables {
  solana_deposit_addresses: SolanaDepositAddressesTable;
  solana_watch_cursors: SolanaWatchCursorsTable;
  solana_deposits: SolanaDepositsTable;
}
