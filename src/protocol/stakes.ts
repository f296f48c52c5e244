import { z } from "zod";
import { AmountRequest } from "./amounts.ts";
import { Amount } from "./clusters.ts";
import { IdPrefix, idSchema } from "./ids.ts";

/** A stake position's status: active → unbonding (cooling down, still slashable) → withdrawn. */
export const StakeStatusName = z.enum(["active", "unbonding", "withdrawn"]);

/** `POST /v1/stakes` (header Idempotency-Key): stake TDM from your wallet on a node. */
export const StakeRequest = z.strictObject({
  nodeId: idSchema(IdPrefix.node),
  /** TDM, a decimal string with at most 6 decimals, e.g. "100" or "12.5". */
  amount: AmountRequest,
});
export type StakeRequest = z.infer<typeof StakeRequest>;

/** One stake position. */
export const StakeView = z.strictObject({
  id: idSchema(IdPrefix.stake),
  nodeId: idSchema(IdPrefix.node),
  accountId: idSchema(IdPrefix.account),
  /** TDM staked when the position was made. */
  amount: Amount,
  status: StakeStatusName,
  createdAt: z.iso.datetime(),
  /** When it was unstaked (the cooldown began); null while active. */
  unstakedAt: z.iso.datetime().nullable(),
  /** From when it can be withdrawn; null while active. */
  withdrawableAt: z.iso.datetime().nullable(),
  withdrawnAt: z.iso.datetime().nullable(),
  /**
   * The ledger transaction of the TDM this answer is about: the withdrawal's in a withdrawal's
   * answer (null when a slash left nothing to pay), else the one that staked it.
   */
  transactionId: idSchema(IdPrefix.transaction).nullable(),
});
export type StakeView = z.infer<typeof StakeView>;

export const StakeList = z.strictObject({
  items: z.array(StakeView),
  nextCursor: idSchema(IdPrefix.stake).nullable(),
});
export type StakeList = z.infer<typeof StakeList>;

export const StakeListQuery = z.strictObject({
  limit: z.coerce.number().int().min(1).max(500).default(50),
  /** The last id of the page before (newest first). */
  cursor: idSchema(IdPrefix.stake).optional(),
  nodeId: idSchema(IdPrefix.node).optional(),
  status: StakeStatusName.optional(),
});
export type StakeListQuery = {
  limit?: number;
  cursor?: string;
  nodeId?: string;
  status?: z.infer<typeof StakeStatusName>;
};

export const StakeParams = z.strictObject({ id: idSchema(IdPrefix.stake) });

/**
 * A node's stake, public (`GET /v1/nodes/:id/stake`): totals only, no staker named. `eligible`
 * says whether its active stake reaches `minimum` (by GPU count and catalog tier), the stake a
 * node needs to share the hourly emission.
 */
export const NodeStakeView = z.strictObject({
  nodeId: idSchema(IdPrefix.node),
  /** Active + unbonding: all of it can be slashed. */
  staked: Amount,
  active: Amount,
  unbonding: Amount,
  minimum: Amount,
  eligible: z.boolean(),
  /** The supplier's share of the node's rewards before its stakers share the rest, percent. */
  commissionPercent: z.string().regex(/^\d{1,3}\.\d{2}$/),
  /** Accounts with an active or unbonding position. */
  stakers: z.number().int().min(0),
  positions: z.number().int().min(0),
  /** Σ its whole shares of reward blocks (commission + its stakers' rewards), TDM. */
  rewardsEarned: Amount,
  /** Of which its supplier took as commission. */
  rewardsCommission: Amount,
  /** Reward blocks it was rewarded in. */
  rewardedBlocks: z.number().int().min(0),
});
export type NodeStakeView = z.infer<typeof NodeStakeView>;

/** `PUT /v1/nodes/:id/commission` (the node's owner): "10" = 10 %, at most 2 decimals. */
export const CommissionRequest = z.strictObject({
  commissionPercent: z.string().max(16),
});
export type CommissionRequest = z.infer<typeof CommissionRequest>;
