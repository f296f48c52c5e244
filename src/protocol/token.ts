import { z } from "zod";
import { Amount } from "./clusters.ts";
import { IdPrefix, idSchema } from "./ids.ts";

/** One year of the emission schedule: its number (1 = the year from genesis) and its total, TDM. */
export const EmissionYear = z.strictObject({
  year: z.number().int().min(1),
  total: Amount,
});
export type EmissionYear = z.infer<typeof EmissionYear>;

/**
 * The TDM emission schedule (`GET /v1/token/emission`, public; src/core/emission.ts says how it is
 * made exact): every year's total, and what the hour now running emits.
 */
export const EmissionView = z.strictObject({
  /** Years 1 to 20, in order; they sum to the community pool, 300,000,000.000000. */
  years: z.array(EmissionYear),
  /** TDM the current hour emits ("0.000000" before genesis and after the last year). */
  hourly: Amount,
  /** The current hour, counted from genesis from 0 (negative before genesis). */
  hour: z.number().int(),
  /** The network's genesis time: hour 0 begins here. */
  genesisAt: z.iso.datetime(),
});
export type EmissionView = z.infer<typeof EmissionView>;

/**
 * TDM's supply (`GET /v1/token`, public), 6-decimal strings: total supply = genesis + emitted −
 * burned, never above `maxSupply`; circulating = total supply − staked (never below zero).
 */
export const TokenView = z.strictObject({
  maxSupply: Amount,
  genesis: Amount,
  /** Minted by hourly emission (reward blocks); "0.000000" until they exist. */
  emitted: Amount,
  /** TDM destroyed by the 0.5 % rental burn. */
  burned: Amount,
  totalSupply: Amount,
  /** On stake positions, active and unbonding. */
  staked: Amount,
  circulating: Amount,
});
export type TokenView = z.infer<typeof TokenView>;

/** Why a node a block nominated earned nothing (src/core/rewards.ts checks them in this order). */
export const RefusalReasonName = z.enum([
  "not-verified",
  "flagged",
  "not-online-all-hour",
  "stake-below-minimum",
  "no-proven-capacity",
]);

/** An emission hour, counted from genesis from 0. */
const Hour = z.number().int().min(0);

/** One hourly reward block, without its nodes (`GET /v1/token/blocks`, public). */
export const RewardBlockSummary = z.strictObject({
  hour: Hour,
  /** When the hour began (genesis + hour hours). */
  startsAt: z.iso.datetime(),
  /** What the schedule emits that hour. */
  emission: Amount,
  /** What the block minted and paid: the emission, or "0.000000" when no node was eligible. */
  minted: Amount,
  /** Σ the rewarded nodes' proven capacity, TFLOPS FP32 (3 decimals). */
  capacityTflops: z.string(),
  nominated: z.number().int().min(0),
  rewarded: z.number().int().min(0),
  refused: z.number().int().min(0),
  /** When the block was made: after its hour ended, later for an hour the coordinator missed. */
  createdAt: z.iso.datetime(),
});
export type RewardBlockSummary = z.infer<typeof RewardBlockSummary>;

export const RewardBlockList = z.strictObject({
  items: z.array(RewardBlockSummary),
  /** Pass as `cursor` for the next (older) page; null on the last. */
  nextCursor: z.string().nullable(),
});
export type RewardBlockList = z.infer<typeof RewardBlockList>;

export const RewardBlockListQuery = z.strictObject({
  limit: z.coerce.number().int().min(1).max(500).default(24),
  /** The last hour of the page before (newest first), as given in `nextCursor`. */
  cursor: z
    .string()
    .regex(/^\d{1,15}$/)
    .optional(),
});
export type RewardBlockListQuery = { limit?: number; cursor?: string };

/** One node a block nominated: rewarded (with its share) or refused (with why). */
export const RewardBlockNode = z.strictObject({
  nodeId: idSchema(IdPrefix.node),
  outcome: z.enum(["rewarded", "refused"]),
  /** Null for a rewarded node. */
  reason: RefusalReasonName.nullable(),
  capacityTflops: z.string(),
  /** Its active stake at the block. */
  staked: Amount,
  /** Its whole share: commission + what its stakers received. */
  share: Amount,
  /** What its supplier took. */
  commission: Amount,
});
export type RewardBlockNode = z.infer<typeof RewardBlockNode>;

/** `GET /v1/token/blocks/:hour`: the block and a page of its nodes, by node id. */
export const RewardBlockView = z.strictObject({
  block: RewardBlockSummary,
  nodes: z.array(RewardBlockNode),
  /** Pass as `cursor` for the block's next page of nodes; null on the last. */
  nextCursor: idSchema(IdPrefix.node).nullable(),
});
export type RewardBlockView = z.infer<typeof RewardBlockView>;

export const RewardBlockParams = z.strictObject({ hour: z.coerce.number().int().min(0).max(1e9) });

export const RewardBlockQuery = z.strictObject({
  limit: z.coerce.number().int().min(1).max(1000).default(100),
  cursor: idSchema(IdPrefix.node).optional(),
  outcome: z.enum(["rewarded", "refused"]).optional(),
});
export type RewardBlockQuery = {
  limit?: number;
  cursor?: string;
  outcome?: "rewarded" | "refused";
};

/** What one account earned from reward blocks (`GET /v1/rewards`): per node, and in all. */
export const AccountRewards = z.strictObject({
  /** Commission taken on its own nodes plus rewards credited to its positions, TDM. */
  total: Amount,
  commission: Amount,
  staking: Amount,
  /** Per node it supplies or stakes on, most earned first. */
  nodes: z.array(
    z.strictObject({
      nodeId: idSchema(IdPrefix.node),
      commission: Amount,
      staking: Amount,
      positions: z.array(z.strictObject({ stakeId: idSchema(IdPrefix.stake), earned: Amount })),
    }),
  ),
});
export type AccountRewards = z.infer<typeof AccountRewards>;
