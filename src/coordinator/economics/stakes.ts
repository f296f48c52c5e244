/**
 * Staked TDM (DESIGN §6 "collateral"; issue 16 item 3): stake, unstake, withdraw, commission.
 *
 * Layout. One ledger escrow account per position (`escrow:clu_stake:<stk_…>`, ledger-accounts.ts)
 * plus a `stakes` row (migration 0024) for what the ledger does not hold: node, staker, status,
 * times. Per position rather than one escrow per node because a position's balance is then
 * derived from postings alone: a slash (issue 16 item 5) debits each position its pro-rata share
 * (core/stake.ts `proRata`) and a reward credits it, with no mutable amount column to keep in
 * step, and a withdrawal pays out exactly what its escrow holds. A node's stake is the sum of its
 * positions' cached balances (`stakeTotals`), one grouped read for a whole reward block. The
 * escrow prefix is borrowed (migration 0003 admits only those account names, and guards only
 * those prefixes against overdraft), so the database refuses any stake going below zero.
 *
 * Concurrency, as in ledger.ts: the idempotency key's advisory lock, then the stake row
 * (`FOR UPDATE`), then the balance rows, all on PostgreSQL; SQLite is serial. A status change is
 * an UPDATE guarded by the status it expects, so two unstakes or two withdrawals of one position
 * change it once and pay once, whatever their keys.
 */
import type { Kysely } from "kysely";
import { ErrorCode, TandemError } from "../../core/errors.ts";
import { ZERO, formatMoney, neg, units, type Money } from "../../core/money.ts";
import {
  DEFAULT_COMMISSION_BPS,
  DEFAULT_STAKE_MINIMUMS,
  percentOf,
  unstakeTransition,
  withdrawTransition,
  type StakeMinimums,
} from "../../core/stake.ts";
import { IdPrefix, newId } from "../../protocol/ids.ts";
import type { NodeStakeView, StakeView } from "../../protocol/stakes.ts";
import { Leg, TransactionKind, stakeAccount, walletAccount } from "../billing/ledger-accounts.ts";
import { inTransaction, requestHash, type Ledger, type Tx } from "../billing/ledger.ts";
import type { Answer } from "../billing/wallet.ts";
import { appendHistory } from "../registry/node-history.ts";
import { toNumberOrNull } from "../store/rows.ts";
import type { CoordinatorConfig } from "../config.ts";
import type { CoordinatorEvents } from "../events.ts";
import type { Database } from "../store/schema.ts";
import type { ReadDb } from "../store/transaction.ts";
import {
  listStakes,
  nodeStakeView,
  selectStake,
  stakeViewOf,
  statusOf,
  viewOfRow,
  type StakeListFilter,
  type StakeRow,
} from "./stake-queries.ts";

export { stakeTotals, type NodeStakeTotals } from "./stake-queries.ts";

/** Staking rules (coordinator config `stake`). */
export interface StakeOptions {
  /** Per GPU by catalog tier, and per CPU node: what makes a node eligible for rewards. */
  readonly minimums: StakeMinimums;
  /** The smallest position one may open, TDM units (default 1 TDM). */
  readonly minStakeAmount: Money;
  /** How long unstaked TDM stays slashable before it can be withdrawn, ms (default 14 days). */
  readonly cooldownMs: number;
  /** A node's commission until its owner sets one, basis points (default 1,000 = 10 %). */
  readonly defaultCommissionBps: number;
}

export const DEFAULT_STAKE_OPTIONS: StakeOptions = {
  minimums: DEFAULT_STAKE_MINIMUMS,
  minStakeAmount: units(1_000_000n),
  cooldownMs: 14 * 24 * 3_600_000,
  defaultCommissionBps: DEFAULT_COMMISSION_BPS,
};

/** The options from the coordinator's config (`stake`). */
export function stakeOptionsOf(config: { stake: StakeConfig }): StakeOptions {
  const c = config.stake;
  return {
    minimums: {
      perDatacenterGpu: units(c.minPerDatacenterGpuUnits),
      perConsumerGpu: units(c.minPerConsumerGpuUnits),
      perCpuNode: units(c.minPerCpuNodeUnits),
    },
    minStakeAmount: units(c.minStakeUnits),
    cooldownMs: c.cooldownMs,
    defaultCommissionBps: c.defaultCommissionBps,
  };
}

type StakeConfig = CoordinatorConfig["stake"];

interface Request {
  /** Who asks (the staker): scopes the idempotency key and owns the position. */
  readonly requestedBy: string;
  readonly idempotencyKey: string;
  readonly nowMs: number;
}

export class StakeService {
  constructor(
    private readonly db: Kysely<Database>,
    private readonly ledger: Ledger,
    private readonly events: CoordinatorEvents,
    readonly options: StakeOptions = DEFAULT_STAKE_OPTIONS,
  ) {}

  /** Publishes `node:stake` once the change has committed (not for a replay). */
  private async published(
    change: Promise<Answer<StakeView>>,
    action: string,
    atMs: number,
  ): Promise<Answer<StakeView>> {
    const answer = await change;
    if (!answer.replayed)
      this.events.emit("node:stake", { nodeId: answer.body.nodeId, action, atMs });
    return answer;
  }

  /** Moves `amount` TDM from the staker's wallet into a new position on `nodeId`. */
  stake(request: Request & { nodeId: string; amount: Money }): Promise<Answer<StakeView>> {
    return this.published(this.addStake(request), "stake-added", request.nowMs);
  }

  private addStake(request: Request & { nodeId: string; amount: Money }) {
    const key = `stake:${request.requestedBy}:${request.idempotencyKey}`;
    const hash = requestHash(TransactionKind.STAKE, {
      nodeId: request.nodeId,
      amount: request.amount,
    });
    return inTransaction(this.db, async (tx) => {
      await this.ledger.lockKey(tx, key);
      const existing = await this.ledger.replay(tx, key, hash);
      if (existing !== undefined) return { body: existing.response as StakeView, replayed: true };
      await liveNode(tx, request.nodeId);
      if (request.amount < this.options.minStakeAmount) {
        const minimum = formatMoney(this.options.minStakeAmount);
        throw new TandemError(ErrorCode.INVALID_AMOUNT, `a stake is at least ${minimum} TDM`, {
          details: { problem: "BELOW_MINIMUM", field: "amount", min: minimum },
        });
      }
      const wallet = walletAccount(request.requestedBy);
      const held = (await this.ledger.lockBalances(tx, "TDM", [wallet])).get(wallet) ?? ZERO;
      if (held < request.amount) {
        throw new TandemError(ErrorCode.INSUFFICIENT_FUNDS, "the wallet holds too little TDM", {
          details: {
            currency: "TDM",
            held: formatMoney(held),
            needed: formatMoney(request.amount),
          },
        });
      }
      const id = newId(IdPrefix.stake, request.nowMs);
      const view = (transactionId: string): StakeView => ({
        id,
        nodeId: request.nodeId,
        accountId: request.requestedBy,
        amount: formatMoney(request.amount),
        status: "active",
        createdAt: new Date(request.nowMs).toISOString(),
        unstakedAt: null,
        withdrawableAt: null,
        withdrawnAt: null,
        transactionId,
      });
      const { response } = await this.ledger.record(tx, {
        idempotencyKey: key,
        kind: TransactionKind.STAKE,
        requestHash: hash,
        accountId: request.requestedBy,
        metadata: { stakeId: id, nodeId: request.nodeId },
        response: view,
        nowMs: request.nowMs,
        postings: [
          { account: wallet, currency: "TDM", amount: neg(request.amount), leg: Leg.STAKE },
          { account: stakeAccount(id), currency: "TDM", amount: request.amount, leg: Leg.STAKE },
        ],
      });
      await tx
        .insertInto("stakes")
        .values({
          id,
          node_id: request.nodeId,
          account_id: request.requestedBy,
          amount: request.amount,
          status: "active",
          created_at: request.nowMs,
          create_key: key,
        })
        .execute();
      await appendHistory(tx, {
        nodeId: request.nodeId,
        atMs: request.nowMs,
        actor: `account:${request.requestedBy}`,
        action: "stake-added",
        detail: { stakeId: id, amount: formatMoney(request.amount) },
      });
      return { body: response as StakeView, replayed: false };
    });
  }

  /** Starts a position's cooldown: it stays slashable until `withdrawableAt`. */
  unstake(request: Request & { stakeId: string }): Promise<Answer<StakeView>> {
    return this.published(this.startCooldown(request), "stake-unbonding", request.nowMs);
  }

  private startCooldown(request: Request & { stakeId: string }) {
    const key = `unstake:${request.requestedBy}:${request.idempotencyKey}`;
    return inTransaction(this.db, async (tx) => {
      await this.ledger.lockKey(tx, key);
      const used = await tx
        .selectFrom("stakes")
        .select("id")
        .where("unstake_key", "=", key)
        .executeTakeFirst();
      if (used !== undefined && used.id !== request.stakeId)
        throw new TandemError(
          ErrorCode.IDEMPOTENCY_CONFLICT,
          "this idempotency key was already used for a different request",
          { details: { stakeId: used.id } },
        );
      const row = await this.ownStake(tx, request.stakeId, request.requestedBy);
      if (used !== undefined) return { body: await this.viewOf(tx, row), replayed: true };
      const to = unstakeTransition(statusOf(row));
      const withdrawableAt = request.nowMs + this.options.cooldownMs;
      const updated = await tx
        .updateTable("stakes")
        .set({
          status: to,
          unstaked_at: request.nowMs,
          unstake_key: key,
          withdrawable_at: withdrawableAt,
        })
        .where("id", "=", row.id)
        .where("status", "=", "active")
        .executeTakeFirst();
      if (updated.numUpdatedRows !== 1n) unstakeTransition("unbonding");
      await appendHistory(tx, {
        nodeId: row.node_id,
        atMs: request.nowMs,
        actor: `account:${request.requestedBy}`,
        action: "stake-unbonding",
        from: "active",
        to,
        detail: {
          stakeId: row.id,
          amount: formatMoney(units(row.amount)),
          withdrawableAt: new Date(withdrawableAt).toISOString(),
        },
      });
      const after = await this.ownStake(tx, row.id, request.requestedBy);
      return { body: await this.viewOf(tx, after), replayed: false };
    });
  }

  /** Pays a position whose cooldown is over back to its staker's wallet: all its escrow holds. */
  withdraw(request: Request & { stakeId: string }): Promise<Answer<StakeView>> {
    return this.published(this.payBack(request), "stake-withdrawn", request.nowMs);
  }

  private payBack(request: Request & { stakeId: string }) {
    const key = `stake-withdrawal:${request.requestedBy}:${request.idempotencyKey}`;
    const hash = requestHash(TransactionKind.STAKE_WITHDRAWAL, { stakeId: request.stakeId });
    return inTransaction(this.db, async (tx) => {
      await this.ledger.lockKey(tx, key);
      const existing = await this.ledger.replay(tx, key, hash);
      if (existing !== undefined) return { body: existing.response as StakeView, replayed: true };
      const row = await this.ownStake(tx, request.stakeId, request.requestedBy);
      const to = withdrawTransition(
        statusOf(row),
        request.nowMs,
        toNumberOrNull(row.withdrawable_at),
      );
      const updated = await tx
        .updateTable("stakes")
        .set({ status: to, withdrawn_at: request.nowMs })
        .where("id", "=", row.id)
        .where("status", "=", "unbonding")
        .executeTakeFirst();
      if (updated.numUpdatedRows !== 1n) withdrawTransition("withdrawn", request.nowMs, null);
      const escrow = stakeAccount(row.id);
      const wallet = walletAccount(row.account_id);
      const held = (await this.ledger.lockBalances(tx, "TDM", [escrow])).get(escrow) ?? ZERO;
      const after = await this.ownStake(tx, row.id, request.requestedBy);
      let transactionId: string | null = null;
      // A position slashed to nothing has nothing to pay; it is still closed.
      if (held > 0n) {
        const recorded = await this.ledger.record(tx, {
          idempotencyKey: key,
          kind: TransactionKind.STAKE_WITHDRAWAL,
          requestHash: hash,
          accountId: row.account_id,
          metadata: { stakeId: row.id, nodeId: row.node_id },
          response: (id) => viewOfRow(after, id),
          nowMs: request.nowMs,
          postings: [
            { account: escrow, currency: "TDM", amount: neg(held), leg: Leg.STAKE_WITHDRAWAL },
            { account: wallet, currency: "TDM", amount: held, leg: Leg.STAKE_WITHDRAWAL },
          ],
        });
        transactionId = recorded.id;
      }
      await appendHistory(tx, {
        nodeId: row.node_id,
        atMs: request.nowMs,
        actor: `account:${request.requestedBy}`,
        action: "stake-withdrawn",
        from: "unbonding",
        to,
        detail: { stakeId: row.id, amount: formatMoney(held) },
      });
      return { body: viewOfRow(after, transactionId), replayed: false };
    });
  }

  /** Sets a node's commission; only its owner may (else FORBIDDEN), not on a revoked node. */
  async setCommission(request: {
    requestedBy: string;
    nodeId: string;
    commissionBps: number;
    nowMs: number;
  }): Promise<NodeStakeView> {
    const changed = await inTransaction(this.db, async (tx) => {
      const node = await liveNode(tx, request.nodeId);
      if (node.account_id !== request.requestedBy)
        throw new TandemError(ErrorCode.FORBIDDEN, "only the node's owner sets its commission");
      const before = await tx
        .selectFrom("node_commissions")
        .select("commission_bps")
        .where("node_id", "=", request.nodeId)
        .executeTakeFirst();
      const from = before?.commission_bps ?? this.options.defaultCommissionBps;
      await tx
        .insertInto("node_commissions")
        .values({
          node_id: request.nodeId,
          commission_bps: request.commissionBps,
          updated_at: request.nowMs,
        })
        .onConflict((oc) =>
          oc.column("node_id").doUpdateSet({
            commission_bps: request.commissionBps,
            updated_at: request.nowMs,
          }),
        )
        .execute();
      if (from !== request.commissionBps)
        await appendHistory(tx, {
          nodeId: request.nodeId,
          atMs: request.nowMs,
          actor: `account:${request.requestedBy}`,
          action: "commission-changed",
          from: `${percentOf(from)}%`,
          to: `${percentOf(request.commissionBps)}%`,
        });
      return from !== request.commissionBps;
    });
    if (changed)
      this.events.emit("node:stake", {
        nodeId: request.nodeId,
        action: "commission-changed",
        atMs: request.nowMs,
      });
    return this.nodeStake(request.nodeId);
  }

  /** The caller's positions, newest first. */
  list(accountId: string, query: StakeListFilter) {
    return listStakes(this.db, accountId, query);
  }

  /** A node's public stake: totals, minimum, eligibility, commission. */
  nodeStake(nodeId: string): Promise<NodeStakeView> {
    return nodeStakeView(this.db, nodeId, this.options);
  }

  private async ownStake(tx: Tx, stakeId: string, accountId: string) {
    const row = await selectStake(tx, stakeId, this.ledger.dialect === "postgres");
    // Someone else's position reads as absent: ids do not say who staked what.
    if (row === undefined || row.account_id !== accountId)
      throw new TandemError(ErrorCode.NOT_FOUND, `no stake ${stakeId} of yours`);
    return row;
  }

  private viewOf(db: ReadDb | Tx, row: StakeRow): Promise<StakeView> {
    return stakeViewOf(db, row);
  }
}

async function liveNode(tx: Tx, nodeId: string) {
  const node = await tx
    .selectFrom("nodes")
    .select(["id", "account_id", "status"])
    .where("id", "=", nodeId)
    .executeTakeFirst();
  if (node === undefined) throw new TandemError(ErrorCode.NOT_FOUND, `no node ${nodeId}`);
  if (node.status === "revoked")
    throw new TandemError(ErrorCode.CONFLICT, `node ${nodeId} is revoked`, {
      details: { nodeId, status: node.status },
    });
  return node;
}
