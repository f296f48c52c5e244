/**
 * Hourly reward blocks (DESIGN §6 "rewards"; issue 16 item 4): each finished emission hour gets one
 * public block that mints the hour's emission from `emission-pool` and pays it to the eligible
 * nodes (economics/reward-block-plan.ts says who and how much).
 *
 * Exactly once. A block is one DB transaction: the `reward_blocks` row (primary key: the hour), the
 * mint (`block:<hour>`: emission-pool → `escrow:clu_block:<hour>`), one payout transaction per
 * rewarded node (`block:<hour>:<node>`: the block account → the supplier's wallet for the
 * commission and each active position's escrow), and one row per nominated node. It commits whole
 * or not at all, so a coordinator killed mid-block (kill -9) left nothing, and its next leader
 * pays that hour again from the start; a block already there is never paid again (the row is read
 * under the hour's advisory lock on PostgreSQL, and its key is unique everywhere). Hours are paid
 * oldest first, so the hours a coordinator missed while down are paid when it comes back.
 *
 * The mint goes through one account per block so that `emission-pool` gets one posting an hour
 * (the supply reads sum them) while the payouts stay ordinary balanced ledger transactions; the
 * block account ends at exactly 0 (the shares sum to the mint).
 */
import type { Kysely } from "kysely";
import { emissionHourAt } from "../../core/emission.ts";
import { formatMoney, neg, units, type Money } from "../../core/money.ts";
import {
  EMISSION_POOL,
  Leg,
  TransactionKind,
  blockAccount,
  stakeAccount,
  walletAccount,
} from "../billing/ledger-accounts.ts";
import {
  inTransaction,
  requestHash,
  type Ledger,
  type PostingInput,
  type RecordInput,
  type Tx,
} from "../billing/ledger.ts";
import type { CoordinatorEvents } from "../events.ts";
import type { Database } from "../store/schema.ts";
import {
  planBlock,
  type BlockPlan,
  type PlannedNode,
  type RewardRules,
} from "./reward-block-plan.ts";

export type { RewardRules } from "./reward-block-plan.ts";

/** What one block did, for logs and callers. */
export interface BlockOutcome {
  readonly hour: number;
  readonly minted: Money;
  readonly nominated: number;
  readonly rewarded: number;
  /** Ledger rows written: transactions and postings. */
  readonly transactions: number;
  readonly postings: number;
  /** False when the block was there already (nothing written). */
  readonly made: boolean;
}

export interface RewardBlockOptions {
  /** Blocks one run pays at most, oldest first (a long outage is caught up over several runs). */
  readonly maxBlocksPerRun: number;
  /** Payout transactions per ledger batch; progress is reported after each. */
  readonly batch: number;
  /** Called after each batch of a block's payouts (logs; the kill -9 test waits on it). */
  readonly onProgress?: (hour: number, paid: number, of: number) => void;
}

export const DEFAULT_REWARD_BLOCK_OPTIONS: RewardBlockOptions = {
  maxBlocksPerRun: 24,
  batch: 10_000,
};

export class RewardBlocks {
  constructor(
    private readonly db: Kysely<Database>,
    private readonly ledger: Ledger,
    private readonly events: CoordinatorEvents,
    readonly rules: RewardRules,
    private readonly options: RewardBlockOptions = DEFAULT_REWARD_BLOCK_OPTIONS,
  ) {}

  /** The hours that have ended by `nowMs` and have no block, oldest first, at most one run's. */
  async dueHours(nowMs: number): Promise<number[]> {
    const lastEnded = emissionHourAt(nowMs, this.rules.genesisAtMs) - 1;
    if (lastEnded < 0) return [];
    const row = await this.db
      .selectFrom("reward_blocks")
      .select((eb) => eb.fn.max("hour").as("last"))
      .executeTakeFirst();
    const next = row?.last === null || row?.last === undefined ? 0 : Number(row.last) + 1;
    const until = Math.min(lastEnded, next + this.options.maxBlocksPerRun - 1);
    return Array.from({ length: Math.max(0, until - next + 1) }, (_, i) => next + i);
  }

  /** Pays every due hour (one run's worth), oldest first; answers what each block did. */
  async payDue(nowMs: number): Promise<BlockOutcome[]> {
    const outcomes: BlockOutcome[] = [];
    for (const hour of await this.dueHours(nowMs)) outcomes.push(await this.pay(hour, nowMs));
    return outcomes;
  }

  /** Makes hour `hour`'s block unless it exists; one DB transaction. */
  async pay(hour: number, nowMs: number): Promise<BlockOutcome> {
    const outcome = await inTransaction(this.db, async (tx) => {
      await this.ledger.lockKey(tx, blockKey(hour));
      const existing = await tx
        .selectFrom("reward_blocks")
        .select(["minted", "nominated", "rewarded"])
        .where("hour", "=", hour)
        .executeTakeFirst();
      if (existing !== undefined)
        return {
          hour,
          minted: units(existing.minted),
          nominated: existing.nominated,
          rewarded: existing.rewarded,
          transactions: 0,
          postings: 0,
          made: false,
        };
      const plan = await planBlock(tx, hour, this.rules);
      return this.write(tx, plan, nowMs);
    });
    if (outcome.made)
      this.events.emit("token:block", { hour, minted: formatMoney(outcome.minted), atMs: nowMs });
    return outcome;
  }

  private async write(tx: Tx, plan: BlockPlan, nowMs: number): Promise<BlockOutcome> {
    const rewarded = plan.nodes.filter((n) => n.reason === null);
    let transactionId: string | null = null;
    let transactions = 0;
    let postings = 0;
    if (plan.minted > 0n) {
      const mint = await this.ledger.record(tx, mintInput(plan, nowMs));
      transactionId = mint.id;
      transactions += 1;
      postings += 2;
      const payouts = rewarded.filter((n) => n.share > 0n).map((n) => payoutInput(plan, n, nowMs));
      for (let at = 0; at < payouts.length; at += this.options.batch) {
        const batch = payouts.slice(at, at + this.options.batch);
        await this.ledger.recordMany(tx, batch);
        transactions += batch.length;
        for (const p of batch) postings += p.postings.filter((x) => x.amount !== 0n).length;
        this.options.onProgress?.(plan.hour, at + batch.length, payouts.length);
      }
    }
    await tx
      .insertInto("reward_blocks")
      .values({
        hour: plan.hour,
        starts_at: plan.startsAtMs,
        emission: plan.emission,
        minted: plan.minted,
        capacity: plan.capacity,
        nominated: plan.nodes.length,
        rewarded: rewarded.length,
        transaction_id: transactionId,
        created_at: nowMs,
      })
      .execute();
    await insertBlockNodes(tx, plan);
    return {
      hour: plan.hour,
      minted: plan.minted,
      nominated: plan.nodes.length,
      rewarded: rewarded.length,
      transactions,
      postings,
      made: true,
    };
  }
}

/** The idempotency key of hour `hour`'s mint (its payouts add `:<node>`). */
export const blockKey = (hour: number): string => `block:${hour}`;

function mintInput(plan: BlockPlan, nowMs: number): RecordInput {
  const key = blockKey(plan.hour);
  const hash = requestHash(TransactionKind.REWARD_BLOCK, { hour: plan.hour, minted: plan.minted });
  return {
    idempotencyKey: key,
    kind: TransactionKind.REWARD_BLOCK,
    requestHash: hash,
    metadata: { hour: plan.hour },
    response: (id) => ({ transactionId: id, hour: plan.hour, minted: formatMoney(plan.minted) }),
    nowMs,
    postings: [
      { account: EMISSION_POOL, currency: "TDM", amount: neg(plan.minted), leg: Leg.EMISSION },
      { account: blockAccount(plan.hour), currency: "TDM", amount: plan.minted, leg: Leg.EMISSION },
    ],
  };
}

function payoutInput(plan: BlockPlan, node: PlannedNode, nowMs: number): RecordInput {
  const key = `${blockKey(plan.hour)}:${node.nodeId}`;
  const postings: PostingInput[] = [
    { account: blockAccount(plan.hour), currency: "TDM", amount: neg(node.share), leg: Leg.REWARD },
    {
      account: walletAccount(node.accountId),
      currency: "TDM",
      amount: node.commission,
      leg: Leg.COMMISSION,
    },
  ];
  for (const p of node.positions)
    postings.push({
      account: stakeAccount(p.stakeId),
      currency: "TDM",
      amount: p.amount,
      leg: Leg.REWARD,
    });
  return {
    idempotencyKey: key,
    kind: TransactionKind.REWARD_BLOCK,
    requestHash: requestHash(TransactionKind.REWARD_BLOCK, {
      hour: plan.hour,
      nodeId: node.nodeId,
      share: node.share,
    }),
    accountId: node.accountId,
    metadata: { hour: plan.hour, nodeId: node.nodeId },
    response: (id) => ({ transactionId: id }),
    nowMs,
    postings,
  };
}

/** Rows per INSERT of `reward_block_nodes` (8 columns: well under SQLite's bound-value limit). */
const NODE_ROWS_PER_INSERT = 2000;

async function insertBlockNodes(tx: Tx, plan: BlockPlan): Promise<void> {
  for (let at = 0; at < plan.nodes.length; at += NODE_ROWS_PER_INSERT) {
    const rows = plan.nodes.slice(at, at + NODE_ROWS_PER_INSERT).map((n) => ({
      hour: plan.hour,
      node_id: n.nodeId,
      account_id: n.accountId,
      reason: n.reason,
      capacity: n.capacity,
      staked: n.staked,
      share: n.share,
      commission: n.commission,
    }));
    await tx.insertInto("reward_block_nodes").values(rows).execute();
  }
}
