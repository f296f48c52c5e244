import type { ColumnType } from "kysely";
import type { Int8 } from "./schema.ts";

/**
 * Ledger tables (migration 0003-ledger). Amounts are signed 64-bit integers of the smallest unit;
 * they are written as `bigint` and read back with `CAST(... AS TEXT)` (a JS number would lose
 * units above 2^53), so their read type is left wide here and nobody reads them as numbers.
 */
type Amount = ColumnType<string | number | bigint, bigint, never>;
type Serial = ColumnType<number | string | bigint, never, never>;

export interface LedgerTransactionsTable {
  id: string;
  idempotency_key: string;
  kind: string;
  request_hash: string;
  account_id: string | null;
  cluster_id: string | null;
  lease_id: string | null;
  served_minutes: number | null;
  /** JSON. */
  metadata: string;
  /** JSON: the operation's answer, replayed for a repeated idempotency key. */
  response: string;
  created_at: Int8;
  /** A converting settlement's rate, `to` per `from` unit (migration 0009); null otherwise. */
  exchange_rate: ColumnType<string | null, string | null | undefined, never>;
}

export interface LedgerPostingsTable {
  id: Serial;
  transaction_id: string;
  account: string;
  currency: string;
  amount: Amount;
  leg: string;
}

/** Written only by the postings trigger; see the migration's header. */
export interface LedgerBalancesTable {
  account: string;
  currency: string;
  balance: Amount;
  last_posting_id: ColumnType<number | string | bigint, never, never>;
}

/** An account's chosen payout currency (migration 0009); no row = the consumer's currency. */
export interface PayoutCurrenciesTable {
  account_id: string;
  currency: string;
  updated_at: Int8;
}

export interface LedgerTables {
  ledger_transactions: LedgerTransactionsTable;
  ledger_postings: LedgerPostingsTable;
  ledger_balances: LedgerBalancesTable;
  payout_currencies: PayoutCurrenciesTable;
}
