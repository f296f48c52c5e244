/**
 * Reads of reward blocks (economics/reward-blocks.ts writes them): the public list and one block
 * with a page of its nodes, a node's rewards for its stake view, and what one account earned.
 */
import { sql } from "kysely";
import { ErrorCode, TandemError } from "../../core/errors.ts";
import { ZERO, formatMoney, units, type Money } from "../../core/money.ts";
import type {
  AccountRewards,
  RewardBlockList,
  RewardBlockNode,
  RewardBlockSummary,
  RewardBlockView,
} from "../../protocol/token.ts";
import { Leg, indexedByAccount, stakeAccount } from "../billing/ledger-accounts.ts";
import type { Dialect } from "../store/database.ts";
import { listParam } from "../store/list-param.ts";
import { toNumber } from "../store/rows.ts";
import type { ReadDb } from "../store/transaction.ts";

const iso = (ms: unknown) => new Date(toNumber(ms as number)).toISOString();
const money = (value: unknown) => formatMoney(units(value as string));
/** Milli-TFLOPS as TFLOPS with 3 decimals. */
const tflops = (milli: unknown) => {
  const m = BigInt(milli as string);
  return `${m / 1000n}.${String(m % 1000n).padStart(3, "0")}`;
};

function blockRows(db: ReadDb) {
  return db
    .selectFrom("reward_blocks")
    .select(["hour", "starts_at", "nominated", "rewarded", "created_at"])
    .select([
      sql<string>`CAST(emission AS TEXT)`.as("emission"),
      sql<string>`CAST(minted AS TEXT)`.as("minted"),
      sql<string>`CAST(capacity AS TEXT)`.as("capacity"),
    ]);
}

type BlockRow = Awaited<ReturnType<ReturnType<typeof blockRows>["execute"]>>[number];

function summaryOf(row: BlockRow): RewardBlockSummary {
  return {
    hour: toNumber(row.hour),
    startsAt: iso(row.starts_at),
    emission: money(row.emission),
    minted: money(row.minted),
    capacityTflops: tflops(row.capacity),
    nominated: row.nominated,
    rewarded: row.rewarded,
    refused: row.nominated - row.rewarded,
    createdAt: iso(row.created_at),
  };
}

/** Blocks, newest first. */
export async function listBlocks(
  db: ReadDb,
  query: { limit: number; cursor?: string | undefined },
): Promise<RewardBlockList> {
  let rows = blockRows(db)
    .orderBy("hour", "desc")
    .limit(query.limit + 1);
  if (query.cursor !== undefined) rows = rows.where("hour", "<", Number(query.cursor));
  const found = await rows.execute();
  const page = found.slice(0, query.limit);
  return {
    items: page.map(summaryOf),
    nextCursor: found.length > query.limit ? String(toNumber(page.at(-1)!.hour)) : null,
  };
}

/** One block and a page of its nodes by id; NOT_FOUND for an hour without a block. */
export async function blockView(
  db: ReadDb,
  hour: number,
  query: { limit: number; cursor?: string | undefined; outcome?: "rewarded" | "refused" },
): Promise<RewardBlockView> {
  const row = await blockRows(db).where("hour", "=", hour).executeTakeFirst();
  if (row === undefined)
    throw new TandemError(ErrorCode.NOT_FOUND, `no reward block for hour ${hour} (yet)`);
  let nodes = db
    .selectFrom("reward_block_nodes")
    .select(["node_id", "reason"])
    .select([
      sql<string>`CAST(capacity AS TEXT)`.as("capacity"),
      sql<string>`CAST(staked AS TEXT)`.as("staked"),
      sql<string>`CAST(share AS TEXT)`.as("share"),
      sql<string>`CAST(commission AS TEXT)`.as("commission"),
    ])
    .where("hour", "=", hour)
    .orderBy("node_id")
    .limit(query.limit + 1);
  if (query.cursor !== undefined) nodes = nodes.where("node_id", ">", query.cursor);
  if (query.outcome === "rewarded") nodes = nodes.where("reason", "is", null);
  if (query.outcome === "refused") nodes = nodes.where("reason", "is not", null);
  const found = await nodes.execute();
  const page = found.slice(0, query.limit);
  return {
    block: summaryOf(row),
    nodes: page.map((n): RewardBlockNode => ({
      nodeId: n.node_id,
      outcome: n.reason === null ? "rewarded" : "refused",
      reason: n.reason as RewardBlockNode["reason"],
      capacityTflops: tflops(n.capacity),
      staked: money(n.staked),
      share: money(n.share),
      commission: money(n.commission),
    })),
    nextCursor: found.length > query.limit ? page.at(-1)!.node_id : null,
  };
}

/** A node's rewards over all blocks: its whole shares, its supplier's commission, how many. */
export async function nodeRewards(db: ReadDb, nodeId: string) {
  const row = await db
    .selectFrom("reward_block_nodes")
    .select([
      sql<string | null>`CAST(SUM(share) AS TEXT)`.as("share"),
      sql<string | null>`CAST(SUM(commission) AS TEXT)`.as("commission"),
      sql<number>`COUNT(*)`.as("blocks"),
    ])
    .where("node_id", "=", nodeId)
    .where("reason", "is", null)
    .executeTakeFirst();
  return {
    rewardsEarned: formatMoney(units(row?.share ?? 0)),
    rewardsCommission: formatMoney(units(row?.commission ?? 0)),
    rewardedBlocks: Number(row?.blocks ?? 0),
  };
}

/**
 * What `accountId` earned: the commission of its own nodes (from the blocks' rows) and what the
 * blocks credited to each of its positions (their `reward` postings).
 */
export async function accountRewards(
  db: ReadDb,
  dialect: Dialect,
  accountId: string,
): Promise<AccountRewards> {
  const commissions = await db
    .selectFrom("reward_block_nodes as r")
    .innerJoin("nodes as n", "n.id", "r.node_id")
    .select(["r.node_id", sql<string>`CAST(SUM(r.commission) AS TEXT)`.as("total")])
    .where("n.account_id", "=", accountId)
    .where("r.reason", "is", null)
    .groupBy("r.node_id")
    .execute();
  const positions = await db
    .selectFrom("stakes")
    .select(["id", "node_id"])
    .where("account_id", "=", accountId)
    .orderBy("id")
    .execute();
  const earned = new Map<string, Money>();
  if (positions.length > 0) {
    const accounts = listParam(positions.map((p) => stakeAccount(p.id)));
    const inList =
      dialect === "postgres"
        ? sql`account IN (SELECT json_array_elements_text(${accounts}::json))`
        : sql`account IN (SELECT value FROM json_each(${accounts}))`;
    const { rows } = await sql<{ account: string; total: string }>`
      SELECT account, CAST(SUM(amount) AS TEXT) AS total FROM ledger_postings
      WHERE ${inList} AND currency = 'TDM' AND leg = ${Leg.REWARD}
        AND ${sql.raw(indexedByAccount())}
      GROUP BY account`.execute(db);
    for (const r of rows) earned.set(r.account, units(r.total));
  }
  const byNode = new Map<
    string,
    { commission: Money; staking: Money; positions: Array<{ stakeId: string; earned: Money }> }
  >();
  const entry = (nodeId: string) => {
    const found = byNode.get(nodeId) ?? { commission: ZERO, staking: ZERO, positions: [] };
    byNode.set(nodeId, found);
    return found;
  };
  for (const c of commissions) entry(c.node_id).commission = units(c.total);
  for (const p of positions) {
    const amount = earned.get(stakeAccount(p.id)) ?? ZERO;
    const e = entry(p.node_id);
    e.positions.push({ stakeId: p.id, earned: amount });
    e.staking = units(e.staking + amount);
  }
  const nodes = [...byNode]
    .map(([nodeId, e]) => ({ nodeId, ...e, all: e.commission + e.staking }))
    .sort((a, b) => (a.all === b.all ? (a.nodeId < b.nodeId ? -1 : 1) : a.all > b.all ? -1 : 1));
  const commission = units(nodes.reduce((s, n) => s + n.commission, 0n));
  const staking = units(nodes.reduce((s, n) => s + n.staking, 0n));
  return {
    total: formatMoney(units(commission + staking)),
    commission: formatMoney(commission),
    staking: formatMoney(staking),
    nodes: nodes.map((n) => ({
      nodeId: n.nodeId,
      commission: formatMoney(n.commission),
      staking: formatMoney(n.staking),
      positions: n.positions.map((p) => ({ stakeId: p.stakeId, earned: formatMoney(p.earned) })),
    })),
  };
}
