import { z } from "zod";
import { Amount, ClusterEvent, ClusterKind, ClusterStatusName } from "./clusters.ts";
import { IdPrefix, idSchema } from "./ids.ts";
import { Cursor } from "./nodes.ts";

/**
 * Cluster event types anyone may see, with the detail fields each keeps: node ids, ranks and
 * counts, which the public node pages show anyway. Reasons, commands, logs and the owner never
 * leave the owner's view (`GET /v1/clusters/:id`).
 */
export const PUBLIC_CLUSTER_EVENTS = {
  reserved: [],
  running: ["provisioningMs"],
  failover: ["rank", "fromNodeId", "toNodeId", "via"],
  takeover: ["rank", "nodeId", "fromNodeId", "takeoverMs"],
  "scaled-up": ["from", "to"],
  "scaled-down": ["from", "to"],
  "node-lost": ["nodeId", "rank"],
  completed: [],
  failed: [],
  terminated: [],
  expired: [],
} as const satisfies Record<string, readonly string[]>;

/** A cluster as the public sees it (`GET /v1/network/clusters`): no owner, command or logs. */
export const PublicCluster = z.strictObject({
  id: idSchema(IdPrefix.cluster),
  kind: ClusterKind,
  status: ClusterStatusName,
  /** Nodes the cluster holds now (ranked and standby), or held last if it has ended. */
  nodes: z.number().int(),
  standby: z.number().int(),
  /** The most common GPU model among those nodes; `cpu` for CPU-only, null when none. */
  gpuModel: z.string().nullable(),
  gpus: z.number().int(),
  regions: z.array(z.string()),
  createdAt: z.iso.datetime(),
  startedAt: z.iso.datetime().nullable(),
  endedAt: z.iso.datetime().nullable(),
  /** Public events only ({@link PUBLIC_CLUSTER_EVENTS}), oldest first. */
  events: z.array(ClusterEvent),
});
export type PublicCluster = z.infer<typeof PublicCluster>;

export const PublicClustersQuery = z.strictObject({
  status: ClusterStatusName.optional(),
  limit: z.coerce.number().int().min(1).max(100).default(20),
  cursor: Cursor.optional(),
});
export type PublicClustersQuery = z.input<typeof PublicClustersQuery>;

export const PublicClusterList = z.strictObject({
  /** Newest first. */
  items: z.array(PublicCluster),
  nextCursor: z.string().nullable(),
  /** Clusters not yet ended, by status (`pending`, `provisioning`, `running`). */
  active: z.record(z.string(), z.number().int()),
});
export type PublicClusterList = z.infer<typeof PublicClusterList>;

/** The live stream's event name for {@link LiveClusterEvent} (`GET /v1/events`). */
export const LIVE_CLUSTER_EVENT = "cluster.event";

/**
 * A public cluster event as it happens, on the live stream: the same anonymized facts as
 * `GET /v1/network/clusters/:id`, plus the cluster's status and kind right after it.
 */
export const LiveClusterEvent = z.strictObject({
  clusterId: idSchema(IdPrefix.cluster),
  kind: ClusterKind,
  status: ClusterStatusName,
  at: z.iso.datetime(),
  type: z.string(),
  detail: z.record(z.string(), z.unknown()),
});
export type LiveClusterEvent = z.infer<typeof LiveClusterEvent>;

/** One GPU model on the prices page (`GET /v1/network/prices`); amounts in USD per GPU-hour. */
export const ModelPrice = z.strictObject({
  model: z.string(),
  name: z.string(),
  tier: z.enum(["consumer", "datacenter"]),
  catalogPerGpuHour: Amount,
  /** In `market` mode: suppliers' prices over the available nodes of this model; else null. */
  market: z
    .strictObject({ nodes: z.number().int(), minPerGpuHour: Amount, medianPerGpuHour: Amount })
    .nullable(),
  availableNodes: z.number().int(),
  availableGpus: z.number().int(),
  /** A hyperscaler's on-demand price for the same card (src/core/reference-prices.ts), or null. */
  reference: z
    .strictObject({
      provider: z.string(),
      instance: z.string(),
      perGpuHour: Amount,
      source: z.string(),
    })
    .nullable(),
});
export type ModelPrice = z.infer<typeof ModelPrice>;

export const PriceBoard = z.strictObject({
  pricingMode: z.enum(["catalog", "market"]),
  currency: z.literal("USD"),
  /** A CPU-only node's catalog price per node-hour. */
  cpuNodePerHour: Amount,
  models: z.array(ModelPrice),
  /** When these figures were counted (they are cached for a few seconds). */
  asOf: z.iso.datetime(),
});
export type PriceBoard = z.infer<typeof PriceBoard>;

const PlaceCounts = {
  nodes: z.number().int(),
  online: z.number().int(),
  gpus: z.number().int(),
  gpusOnline: z.number().int(),
  /** Verified supply: GPUs of online nodes past `unverified` and not flagged. */
  gpusVerified: z.number().int(),
};

/** Nodes and GPUs per region and zone (`GET /v1/network/regions`); every known region listed. */
export const RegionBoard = z.strictObject({
  regions: z.array(
    z.strictObject({
      id: z.string(),
      name: z.string(),
      ...PlaceCounts,
      zones: z.array(z.strictObject({ id: z.string(), ...PlaceCounts })),
    }),
  ),
  asOf: z.iso.datetime(),
});
export type RegionBoard = z.infer<typeof RegionBoard>;
