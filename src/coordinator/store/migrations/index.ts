/**
 * The schema's history, one frozen file per step. A database that ran a migration keeps what it
 * did, so a fresh database must get exactly the same: a migration is never edited, renamed or
 * removed once merged (a fix is a new migration), and it imports only `kysely`, the `Dialect` type
 * (`import type`) and `./dialect-types.ts` (frozen too), never live code such as catalog prices or
 * another migration's SQL: it states its values as they were. Prettier leaves these files alone.
 * frozen.test.ts enforces this against `checksums.json` (file → SHA-256).
 *
 * To add a migration:
 * 1. a new file `NNNN-what.ts` with the next unused number, exporting `up(db, dialect)`;
 * 2. import it below and append it to `MIGRATIONS`;
 * 3. add `"NNNN-what.ts": "<sha256sum of the file>"` to `checksums.json` once the file is final
 *    (the test's failure message prints the line to add).
 */
import type { Kysely, Migration, MigrationProvider } from "kysely";
import type { Dialect } from "../database.ts";
import * as foundation from "./0001-foundation.ts";
import * as nodeStatsIndex from "./0002-node-stats-index.ts";
import * as ledger from "./0003-ledger.ts";
import * as clusters from "./0004-clusters.ts";
import * as marketPrices from "./0005-market-prices.ts";
import * as failover from "./0006-failover.ts";
import * as reputation from "./0007-reputation.ts";
import * as autoscale from "./0008-autoscale.ts";
import * as payoutCurrency from "./0009-payout-currency.ts";
import * as nodeSortIndexes from "./0011-node-sort-indexes.ts";
import * as ledgerWritePath from "./0012-ledger-write-path.ts";
import * as nodeEffectivePrice from "./0013-node-effective-price.ts";
import * as ledgerRecordedCheck from "./0014-ledger-recorded-check.ts";
import * as ledgerGuardProbes from "./0015-ledger-guard-probes.ts";
import * as enrollmentTokens from "./0017-enrollment-tokens.ts";
import * as clusterSecrets from "./0018-cluster-secrets.ts";
import * as clusterTls from "./0019-cluster-tls.ts";
import * as rankNetworks from "./0020-rank-networks.ts";
import * as flaggedSupplyIndex from "./0022-flagged-supply-index.ts";
import * as clusterHistory from "./0023-cluster-history.ts";
import * as stakes from "./0024-stakes.ts";
import * as coordinatorLeader from "./0027-coordinator-leader.ts";
import * as workerPresence from "./0028-worker-presence.ts";
import * as rewardBlocks from "./0029-reward-blocks.ts";
import * as solanaDeposits from "./0030-solana-deposits.ts";

type DialectMigration = { up(db: Kysely<unknown>, dialect: Dialect): Promise<void> };

/** Every migration, in order. Add a file `NNNN-name.ts` exporting `up(db, dialect)` and list it here. */
const MIGRATIONS: ReadonlyArray<[string, DialectMigration]> = [
  ["0001-foundation", foundation],
  ["0002-node-stats-index", nodeStatsIndex],
  ["0003-ledger", ledger],
  ["0004-clusters", clusters],
  ["0005-market-prices", marketPrices],
  ["0006-failover", failover],
  ["0007-reputation", reputation],
  ["0008-autoscale", autoscale],
  ["0009-payout-currency", payoutCurrency],
  ["0011-node-sort-indexes", nodeSortIndexes],
  ["0012-ledger-write-path", ledgerWritePath],
  ["0013-node-effective-price", nodeEffectivePrice],
  ["0014-ledger-recorded-check", ledgerRecordedCheck],
  ["0015-ledger-guard-probes", ledgerGuardProbes],
  ["0017-enrollment-tokens", enrollmentTokens],
  ["0018-cluster-secrets", clusterSecrets],
  ["0019-cluster-tls", clusterTls],
  ["0020-rank-networks", rankNetworks],
  ["0022-flagged-supply-index", flaggedSupplyIndex],
  ["0023-cluster-history", clusterHistory],
  ["0024-stakes", stakes],
  ["0027-coordinator-leader", coordinatorLeader],
  ["0028-worker-presence", workerPresence],
  ["0029-reward-blocks", rewardBlocks],
  ["0030-solana-deposits", solanaDeposits],
];

/** One ordered list of migrations for both dialects; where they differ a migration asks `dialect`. */
export function migrationProvider(dialect: Dialect): MigrationProvider {
  const migrations: Record<string, Migration> = {};
  for (const [name, migration] of MIGRATIONS)
    migrations[name] = { up: (db) => migration.up(db, dialect) };
  return { getMigrations: () => Promise.resolve(migrations) };
}
