/**
 * Reads of stake positions (economics/stakes.ts holds the writes): one position's view, a
 * staker's list, a node's public totals, and every node's stake by status for reward blocks and
 * slashes.
 */
import { sql } from "kysely";
import { ErrorCode, TandemError } from "../../core/errors.ts";
import { ZERO, formatMoney, units, type Money } from "../../core/money.ts";
import { isStakeStatus, minimumStake, percentOf, type StakeStatus } from "../../core/stake.ts";
import type { NodeStakeView, StakeList, StakeListQuery, StakeView } from "../../protocol/stakes.ts";
import type { Tx } from "../billing/ledger.ts";
import { toNumberOrNull } from "../store/rows.ts";
import { nodeRewards } from "./reward-block-queries.ts";
import type { ReadDb } from "../store/transaction.ts";
import type { StakeOptions } from "./stakes.ts";

/** A node's stake by status, TDM units: what reward blocks and slashes read. */
export interface NodeStakeTotals {
  readonly active: Money;
  readonly unbonding: Money;
}

/** Which of a staker's positions, a page at a time. */
export interface StakeListFilter {
  limit: number;
  cursor?: string | undefined;
  nodeId?: string | undefined;
  status?: StakeListQuery["status"] | undefined;
}

export type StakeRow = NonNullable<Awaited<ReturnType<typeof selectStake>>>;

/** The caller's positions, newest first. */
export async function listStakes(db: ReadDb, accountId: string, query: StakeListFilter) {
  let rows = db
    .selectFrom("stakes")
    .selectAll()
    .select(sql<string>`CAST(amount AS TEXT)`.as("amount"))
    .where("account_id", "=", accountId)
    .orderBy("id", "desc")
    .limit(query.limit + 1);
  if (query.cursor !== undefined) rows = rows.where("id", "<", query.cursor);
  if (query.nodeId !== undefined) rows = rows.where("node_id", "=", query.nodeId);
  if (query.status !== undefined) rows = rows.where("status", "=", query.status);
  const found = await rows.execute();
  const page = found.slice(0, query.limit);
  const items = await Promise.all(page.map((row) => stakeViewOf(db, row)));
  const list: StakeList = {
    items,
    nextCursor: found.length > query.limit ? (page.at(-1)?.id ?? null) : null,
  };
  return list;
}

/** A node's public stake: totals, minimum, eligibility, commission. */
export async function nodeStakeView(
  db: ReadDb,
  nodeId: string,
  options: Pick<StakeOptions, "minimums" | "defaultCommissionBps">,
): Promise<NodeStakeView> {
  const node = await db
    .selectFrom("nodes")
    .select(["id", "gpu_model", "gpu_count"])
    .where("id", "=", nodeId)
    .executeTakeFirst();
  if (node === undefined) throw new TandemError(ErrorCode.NOT_FOUND, `no node ${nodeId}`);
  const totals = (await stakeTotals(db, [nodeId])).get(nodeId) ?? NO_STAKE;
  const counts = await db
    .selectFrom("stakes")
    .select([
      sql<number>`COUNT(*)`.as("positions"),
      sql<number>`COUNT(DISTINCT account_id)`.as("stakers"),
    ])
    .where("node_id", "=", nodeId)
    .where("status", "in", ["active", "unbonding"])
    .executeTakeFirst();
  const commission = await db
    .selectFrom("node_commissions")
    .select("commission_bps")
    .where("node_id", "=", nodeId)
    .executeTakeFirst();
  const minimum = minimumStake(
    { gpuModel: node.gpu_model, gpuCount: node.gpu_count },
    options.minimums,
  );
  return {
    nodeId,
    staked: formatMoney(units(totals.active + totals.unbonding)),
    active: formatMoney(totals.active),
    unbonding: formatMoney(totals.unbonding),
    minimum: formatMoney(minimum),
    eligible: totals.active >= minimum,
    commissionPercent: percentOf(commission?.commission_bps ?? options.defaultCommissionBps),
    stakers: Number(counts?.stakers ?? 0),
    positions: Number(counts?.positions ?? 0),
    ...(await nodeRewards(db, nodeId)),
  };
}

/** A position as the wire shows it, with the ledger transaction that staked it. */
export async function stakeViewOf(db: ReadDb | Tx, row: StakeRow): Promise<StakeView> {
  const made = await db
    .selectFrom("ledger_transactions")
    .select("id")
    .where("idempotency_key", "=", row.create_key)
    .executeTakeFirst();
  return viewOfRow(row, made?.id ?? null);
}

const NO_STAKE: NodeStakeTotals = { active: ZERO, unbonding: ZERO };

/**
 * Each node's stake by status, from the positions' cached escrow balances (what slashes have left
 * of them): one grouped read, for one node's view or a whole reward block (`nodeIds` absent: all).
 */
export async function stakeTotals(
  db: ReadDb | Tx,
  nodeIds?: readonly string[],
): Promise<Map<string, NodeStakeTotals>> {
  let query = db
    .selectFrom("stakes as s")
    .innerJoin("ledger_balances as b", (join) =>
      join.on("b.currency", "=", "TDM").on(sql<boolean>`b.account = 'escrow:clu_stake:' || s.id`),
    )
    .select(["s.node_id", "s.status", sql<string>`CAST(SUM(b.balance) AS TEXT)`.as("total")])
    .where("s.status", "in", ["active", "unbonding"])
    .groupBy(["s.node_id", "s.status"]);
  if (nodeIds !== undefined) query = query.where("s.node_id", "in", [...nodeIds]);
  const totals = new Map<string, NodeStakeTotals>();
  for (const row of await query.execute()) {
    const current = totals.get(row.node_id) ?? NO_STAKE;
    const amount = units(row.total);
    totals.set(
      row.node_id,
      row.status === "active" ? { ...current, active: amount } : { ...current, unbonding: amount },
    );
  }
  return totals;
}

export function selectStake(db: ReadDb | Tx, stakeId: string, forUpdate: boolean) {
  let query = db
    .selectFrom("stakes")
    .selectAll()
    .select(sql<string>`CAST(amount AS TEXT)`.as("amount"))
    .where("id", "=", stakeId);
  if (forUpdate) query = query.forUpdate();
  return query.executeTakeFirst();
}

export function statusOf(row: { status: string }): StakeStatus {
  if (!isStakeStatus(row.status))
    throw new TandemError(ErrorCode.INTERNAL, `unknown stake status ${row.status}`);
  return row.status;
}

const iso = (ms: unknown) => {
  const n = toNumberOrNull(ms as number | string | bigint | null);
  return n === null ? null : new Date(n).toISOString();
};

export function viewOfRow(row: StakeRow, transactionId: string | null): StakeView {
  return {
    id: row.id,
    nodeId: row.node_id,
    accountId: row.account_id,
    amount: formatMoney(units(row.amount)),
    status: statusOf(row),
    createdAt: iso(row.created_at) ?? "",
    unstakedAt: iso(row.unstaked_at),
    withdrawableAt: iso(row.withdrawable_at),
    withdrawnAt: iso(row.withdrawn_at),
    transactionId,
  };
}
