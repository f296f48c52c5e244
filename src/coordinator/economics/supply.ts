/**
 * TDM's supply (DESIGN §6; issue 16 item 1), read from the ledger alone.
 *
 * - Minting: TDM comes into being only as a debit of `emission-pool` (the mint; its TDM balance is
 *   −(genesis + emitted)). Genesis is one transaction, made once at start (`ensureGenesis`,
 *   idempotency key `genesis:TDM`): 500,000,000 TDM from the mint to the genesis account
 *   (`wallet:acct_genesis`; its vesting baskets are out of scope). Emission (leg `emission`) is
 *   written by reward blocks, which do not exist yet, so `emitted` is 0 until they do.
 * - Burning: the 0.5 % burn of every rental already goes to `burn`; TDM there is destroyed, so it
 *   leaves the supply (other currencies on `burn` accrue for buy-back-and-burn, as before).
 * - total supply = genesis + emitted − burned, never above `MAX_SUPPLY` (the ledger audit checks).
 * - staked = TDM on stake escrows (active and unbonding positions).
 * - circulating = total supply − staked, and never below zero: TDM credited across a payment rail
 *   (`tandem wallet deposit`) comes from outside the ledger and is in neither figure, so on a dev
 *   network stake may exceed what the ledger minted outside the genesis account.
 */
import { sql } from "kysely";
import { COMMUNITY_POOL, GENESIS_SUPPLY, MAX_SUPPLY } from "../../core/emission.ts";
import { ZERO, formatMoney, neg, units, type Money } from "../../core/money.ts";
import type { TokenView } from "../../protocol/token.ts";
import {
  BURN,
  EMISSION_POOL,
  GENESIS_ACCOUNT,
  Leg,
  TransactionKind,
  indexedByAccount,
} from "../billing/ledger-accounts.ts";
import { inTransaction, requestHash, type Ledger } from "../billing/ledger.ts";
import type { Database } from "../store/schema.ts";
import type { Kysely } from "kysely";
import type { ReadDb } from "../store/transaction.ts";

export const GENESIS_KEY = "genesis:TDM";

/** TDM's figures, smallest units. */
export interface TokenSupply {
  readonly maxSupply: Money;
  readonly genesis: Money;
  readonly emitted: Money;
  readonly burned: Money;
  readonly totalSupply: Money;
  readonly staked: Money;
  readonly circulating: Money;
}

/**
 * Mints the genesis allocation unless this database has it: one transaction under a fixed key, so
 * every start and every replica on one PostgreSQL database agree and none mints twice.
 */
export async function ensureGenesis(
  db: Kysely<Database>,
  ledger: Ledger,
  nowMs: number,
  amount: Money = GENESIS_SUPPLY,
): Promise<void> {
  const hash = requestHash(TransactionKind.GENESIS, { amount });
  await inTransaction(db, async (tx) => {
    await ledger.lockKey(tx, GENESIS_KEY);
    if ((await ledger.replay(tx, GENESIS_KEY, hash)) !== undefined) return;
    await ledger.record(tx, {
      idempotencyKey: GENESIS_KEY,
      kind: TransactionKind.GENESIS,
      requestHash: hash,
      metadata: {},
      response: (transactionId) => ({ transactionId, amount: formatMoney(amount) }),
      nowMs,
      postings: [
        { account: EMISSION_POOL, currency: "TDM", amount: neg(amount), leg: Leg.GENESIS },
        { account: GENESIS_ACCOUNT, currency: "TDM", amount, leg: Leg.GENESIS },
      ],
    });
  });
}

/** The supply figures from the postings (mint and burn) and the stake escrows' cached balances. */
export async function tokenSupply(db: ReadDb): Promise<TokenSupply> {
  const minted = await sql<{ leg: string; total: string | null }>`
    SELECT leg, CAST(-SUM(amount) AS TEXT) AS total FROM ledger_postings
    WHERE account = ${EMISSION_POOL} AND currency = 'TDM' AND ${sql.raw(indexedByAccount())}
    GROUP BY leg`.execute(db);
  const burned = await sql<{ total: string | null }>`
    SELECT CAST(SUM(amount) AS TEXT) AS total FROM ledger_postings
    WHERE account = ${BURN} AND currency = 'TDM'`.execute(db);
  const staked = await sql<{ total: string | null }>`
    SELECT CAST(SUM(balance) AS TEXT) AS total FROM ledger_balances
    WHERE currency = 'TDM' AND account LIKE 'escrow:clu_stake:%'`.execute(db);
  const leg = (name: string) => units(minted.rows.find((r) => r.leg === name)?.total ?? 0);
  return supplyOf({
    genesis: leg(Leg.GENESIS),
    emitted: leg(Leg.EMISSION),
    burned: units(burned.rows[0]?.total ?? 0),
    staked: units(staked.rows[0]?.total ?? 0),
  });
}

/** The derived figures from the four the ledger holds. */
export function supplyOf(parts: {
  genesis: Money;
  emitted: Money;
  burned: Money;
  staked: Money;
}): TokenSupply {
  const totalSupply = units(parts.genesis + parts.emitted - parts.burned);
  const free = totalSupply - parts.staked;
  return {
    maxSupply: MAX_SUPPLY,
    ...parts,
    totalSupply,
    circulating: free > 0n ? units(free) : ZERO,
  };
}

/**
 * What is wrong with a supply, one sentence each (none: it holds): genesis above its allocation,
 * emission above the community pool, a negative burn, or a total above the maximum.
 */
export function supplyProblems(supply: TokenSupply): string[] {
  const problems: string[] = [];
  if (supply.genesis > GENESIS_SUPPLY)
    problems.push(`genesis ${formatMoney(supply.genesis)} exceeds ${formatMoney(GENESIS_SUPPLY)}`);
  if (supply.emitted > COMMUNITY_POOL)
    problems.push(`emitted ${formatMoney(supply.emitted)} exceeds ${formatMoney(COMMUNITY_POOL)}`);
  if (supply.burned < 0n) problems.push(`burned ${formatMoney(supply.burned)} is negative`);
  if (supply.genesis + supply.emitted > MAX_SUPPLY || supply.totalSupply > MAX_SUPPLY)
    problems.push(`total supply exceeds the maximum ${formatMoney(MAX_SUPPLY)}`);
  return problems;
}

/** The wire form (`GET /v1/token`). */
export function tokenView(supply: TokenSupply): TokenView {
  return {
    maxSupply: formatMoney(supply.maxSupply),
    genesis: formatMoney(supply.genesis),
    emitted: formatMoney(supply.emitted),
    burned: formatMoney(supply.burned),
    totalSupply: formatMoney(supply.totalSupply),
    staked: formatMoney(supply.staked),
    circulating: formatMoney(supply.circulating),
  };
}
