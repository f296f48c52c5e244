import { z } from "zod";
import { IdPrefix, idSchema } from "./ids.ts";
import { slug } from "./text.ts";
import { CurrencyCode, MoneyString } from "./currency.ts";

export const NodeStatusName = z.enum([
  "unverified",
  "available",
  "leased",
  "standby",
  "offline",
  "revoked",
]);

export const Uptime = z.strictObject({ "24h": z.number(), "7d": z.number(), "30d": z.number() });

export const NodeGpu = z.strictObject({
  index: z.number().int(),
  name: z.string(),
  model: z.string().nullable(),
  memoryTotalMiB: z.number().int(),
});

export const NodeView = z.strictObject({
  id: idSchema(IdPrefix.node),
  deviceId: idSchema(IdPrefix.device),
  status: NodeStatusName,
  region: z.string(),
  zone: z.string(),
  gpus: z.array(NodeGpu),
  gpuModel: z.string().nullable(),
  gpuCount: z.number().int(),
  vramMiB: z.number().int(),
  cpu: z.strictObject({ model: z.string(), cores: z.number().int(), arch: z.string() }),
  memoryTotalMiB: z.number().int(),
  diskFreeMiB: z.number().int(),
  os: z.string(),
  /** The engines its worker reported it can run (torch, dask, ray, podman); null: not reported. */
  engines: z.array(z.string()).nullable(),
  flags: z.array(z.string()),
  verified: z.boolean(),
  uptime: Uptime,
  /** Reputation score 0..100, one decimal (src/core/reputation.ts). */
  reputation: z.number().min(0).max(100),
  /**
   * USD per node-hour as placement prices it (the supplier's own price in market mode, else the
   * catalog's price × GPU count); null when the catalog cannot price the node's GPU model.
   */
  pricePerHourUsd: MoneyString.nullable(),
  registeredAt: z.iso.datetime(),
  lastSeenAt: z.iso.datetime().nullable(),
});
export type NodeView = z.infer<typeof NodeView>;

/** One term of the reputation sum: `points` = `weight` × `value` (0..1). */
export const ReputationComponent = z.strictObject({
  weight: z.number(),
  value: z.number(),
  points: z.number(),
});

/**
 * How a node's reputation is made up (`GET /v1/nodes/:id/reputation`), computed from its public
 * history at `computedAt`; the node's `reputation` is the same figure as of the last refresh.
 */
export const ReputationBreakdown = z.strictObject({
  nodeId: idSchema(IdPrefix.node),
  score: z.number().min(0).max(100),
  computedAt: z.iso.datetime(),
  halfLifeDays: z.number(),
  components: z.strictObject({
    uptime: ReputationComponent,
    completion: ReputationComponent,
    failures: ReputationComponent,
    verification: ReputationComponent,
    slashes: ReputationComponent,
  }),
  /** Decayed counts: each event weighs ½ per `halfLifeDays` of age. */
  evidence: z.strictObject({
    uptime30d: z.number(),
    uptimeTrust: z.number(),
    completed: z.number(),
    lost: z.number(),
    lapsed: z.number(),
    drained: z.number(),
    slashes: z.number(),
    verificationsPassed: z.number(),
    verificationsFailed: z.number(),
  }),
});
export type ReputationBreakdown = z.infer<typeof ReputationBreakdown>;

/** An opaque page cursor (base64url). */
export const Cursor = z
  .string()
  .max(200)
  .regex(/^[A-Za-z0-9_-]+$/, "malformed cursor");

export const NodeSortKey = z.enum([
  "registered",
  "uptime",
  "reputation",
  "gpuModel",
  "region",
  "status",
  "price",
]);
export type NodeSortKey = z.infer<typeof NodeSortKey>;

export const ListNodesQuery = z.strictObject({
  gpuModel: slug(64).optional(),
  region: slug(64).optional(),
  zone: slug(64).optional(),
  status: NodeStatusName.optional(),
  minUptime: z.coerce.number().min(0).max(1).optional(),
  minReputation: z.coerce.number().min(0).max(100).optional(),
  minVramMiB: z.coerce.number().int().min(0).max(16_777_216).optional(),
  /** Order of the list (default `registered`: registration order, by id); ties go by id. */
  sort: NodeSortKey.optional(),
  /** Default: `desc` for uptime and reputation (best first), else `asc` (price: cheapest first). */
  order: z.enum(["asc", "desc"]).optional(),
  limit: z.coerce.number().int().min(1).max(500).default(50),
  cursor: Cursor.optional(),
});
export type ListNodesQuery = z.input<typeof ListNodesQuery>;

export const NodeList = z.strictObject({
  items: z.array(NodeView),
  nextCursor: z.string().nullable(),
});
export type NodeList = z.infer<typeof NodeList>;

export const NodeIdParams = z.strictObject({ id: idSchema(IdPrefix.node) });

export const HistoryEntry = z.strictObject({
  id: z.number().int(),
  at: z.iso.datetime(),
  actor: z.string(),
  action: z.string(),
  from: z.string().nullable(),
  to: z.string().nullable(),
  detail: z.record(z.string(), z.unknown()),
});
export type HistoryEntry = z.infer<typeof HistoryEntry>;

export const HistoryQuery = z.strictObject({
  limit: z.coerce.number().int().min(1).max(500).default(100),
  cursor: Cursor.optional(),
});

export const HistoryList = z.strictObject({
  items: z.array(HistoryEntry),
  nextCursor: z.string().nullable(),
});
export type HistoryList = z.infer<typeof HistoryList>;

/**
 * The network's totals (`GET /v1/network/stats`). `online` counts what is connected; `verified`
 * only the supply that proved itself: online, past `unverified`, and not flagged (e.g. a GPU UUID
 * seen on two devices). Only verified GPUs are supply ("connected vs verified").
 */
export const NetworkStats = z.strictObject({
  nodes: z.strictObject({
    total: z.number().int(),
    online: z.number().int(),
    verified: z.number().int(),
    byStatus: z.record(z.string(), z.number().int()),
  }),
  gpus: z.strictObject({
    total: z.number().int(),
    online: z.number().int(),
    verified: z.number().int(),
    byModel: z.array(
      z.strictObject({
        model: z.string(),
        total: z.number().int(),
        online: z.number().int(),
        verified: z.number().int(),
      }),
    ),
  }),
});
export type NetworkStats = z.infer<typeof NetworkStats>;

/** A node's uptime per day, oldest first (`GET /v1/nodes/:id/uptime`): thirty 24 h windows. */
export const UptimeDays = z.strictObject({
  nodeId: idSchema(IdPrefix.node),
  days: z.array(
    z.strictObject({
      /** Start of the 24 h window. */
      from: z.iso.datetime(),
      /** Online fraction 0..1 of the window; null before the node registered. */
      uptime: z.number().min(0).max(1).nullable(),
    }),
  ),
});
export type UptimeDays = z.infer<typeof UptimeDays>;

/** A node's earnings in one window, each a 6-decimal string (see `NodeEarnings`). */
export const NodeEarningsFigures = z.strictObject({
  /** Gross released from the consumers' escrow for the node's served minutes. */
  served: MoneyString,
  /** Net credited to the supplier's earnings (in the payout currency where converted). */
  paidOut: MoneyString,
  /** The network's fee on the supplier side. */
  supplierFees: MoneyString,
  burned: MoneyString,
  /** Forfeits taken from the supplier's earnings for this node's failures. */
  slashed: MoneyString,
});
export type NodeEarningsFigures = z.infer<typeof NodeEarningsFigures>;

/**
 * What a node earned, from the ledger's postings (`GET /v1/nodes/:id/earnings`): per currency,
 * in all and since `recentFrom` (30 days before `asOf`). A node never paid has no currencies.
 */
export const NodeEarnings = z.strictObject({
  nodeId: idSchema(IdPrefix.node),
  asOf: z.iso.datetime(),
  recentFrom: z.iso.datetime(),
  currencies: z.array(
    z.strictObject({
      currency: CurrencyCode,
      allTime: NodeEarningsFigures,
      last30d: NodeEarningsFigures,
    }),
  ),
});
export type NodeEarnings = z.infer<typeof NodeEarnings>;
