import { z } from "zod";
import { SecretNames } from "./cluster-secrets.ts";
import { AmountRequest, PriceRequest } from "./amounts.ts";
import { IdPrefix, idSchema } from "./ids.ts";
import { PageLimit, pageOf } from "./paging.ts";
import { RankLimits, RankLimitsAsk } from "./hardware.ts";
import { freeText, slug } from "./text.ts";

/** A money amount on the wire, out: exactly 6 decimals (amounts in: ./amounts.ts). */
export const Amount = z.string().regex(/^-?\d{1,13}\.\d{6}$/);
export const CurrencyName = z.enum(["TDM", "USDC", "USD"]);

export const ClusterKind = z.enum(["batch", "torch", "dask", "ray", "container"]);
export type ClusterKind = z.infer<typeof ClusterKind>;

/** `cpu` asks for CPU-only nodes; any other value is a GPU model id from the catalog. */
export const CPU_ONLY = "cpu";

/** What a consumer asks for; shared by search, quote and deploy. */
export const CapacityFilters = z.strictObject({
  gpuModel: slug(64).optional(),
  gpusPerNode: z.number().int().min(1).max(64).optional(),
  nodes: z.number().int().min(1).max(256),
  minVramMiB: z.number().int().min(0).max(16_777_216).optional(),
  regions: z.array(slug(64)).min(1).max(32).optional(),
  spreadZones: z.boolean().optional(),
  /** Minimum 30-day uptime, 0..1. */
  minUptime: z.number().min(0).max(1).optional(),
  /** Minimum reputation score, 0..100 (src/core/reputation.ts). */
  minReputation: z.number().min(0).max(100).optional(),
  maxPricePerHour: PriceRequest.optional(),
  /**
   * Only nodes with at least this much TDM actively staked on them (collateral a slash is paid
   * from first), a decimal string.
   */
  minStake: AmountRequest.optional(),
  teeCapable: z.boolean().optional(),
  /** Standby (shadow) nodes reserved beside `nodes`, taking a failed node's rank at once. */
  shadow: z.number().int().min(0).max(16).optional(),
  /**
   * What each rank needs at least (memory and disk MiB, CPU cores, pids): only nodes offering that
   * much are placed, and each rank runs limited to it; a limit not asked is the node's offer.
   */
  limits: RankLimitsAsk.optional(),
  /**
   * Outbound internet for the ranks (default true). False: a rank's network namespace has no
   * route out at all, only its cluster's overlay (src/protocol/cluster-network.ts).
   */
  internet: z.boolean().optional(),
});
export type CapacityFilters = z.infer<typeof CapacityFilters>;

export const SearchRequest = CapacityFilters.extend({
  currency: CurrencyName.default("USDC"),
  /** Only nodes whose worker can run this kind's engine (as a deploy of that kind would). */
  kind: ClusterKind.optional(),
});
export type SearchRequest = z.input<typeof SearchRequest>;

/** One step of the elimination funnel: how many nodes were left after this filter. */
export const FunnelStep = z.strictObject({ filter: z.string(), remaining: z.number().int() });

export const Offer = z.strictObject({
  nodeId: idSchema(IdPrefix.node),
  region: z.string(),
  zone: z.string(),
  gpuModel: z.string().nullable(),
  gpuCount: z.number().int(),
  pricePerHour: Amount,
});

export const SearchResponse = z.strictObject({
  satisfiable: z.boolean(),
  needed: z.number().int(),
  matching: z.number().int(),
  currency: CurrencyName,
  offers: z.array(Offer),
  funnel: z.array(FunnelStep),
  /** e.g. `available: 20 → rtx-4090: 12 → region eu-west: 3 (need 4)`. */
  explanation: z.string(),
});
export type SearchResponse = z.infer<typeof SearchResponse>;

const Argument = freeText(4096);

/**
 * A `batch` cluster that grows and shrinks with its task queue (`POST /v1/clusters/:id/tasks`):
 * between `min` and `max` nodes, aiming at `tasksPerNode` queued tasks per node. The escrow is
 * charged for `max` nodes up front (growth is always paid for); unused node-time is refunded.
 */
export const Autoscale = z.strictObject({
  min: z.number().int().min(1).max(256),
  max: z.number().int().min(1).max(256),
  tasksPerNode: z.number().int().min(1).max(1000).default(1),
});
export type Autoscale = z.output<typeof Autoscale>;

export const DeployRequest = CapacityFilters.extend({
  kind: ClusterKind,
  /** Paid duration in whole hours. */
  hours: z.number().int().min(1).max(720),
  currency: CurrencyName.default("USDC"),
  /** argv of the job; runs without a shell unless it asks for one (`sh -c …`). */
  command: z.array(Argument).min(1).max(256),
  /** Extra environment for the job (names are upper-case identifiers). */
  env: z.record(z.string().regex(/^[A-Z_][A-Z0-9_]{0,63}$/), freeText(4096)).optional(),
  /** OCI image, for kind `container`. */
  image: z
    .string()
    .max(256)
    .regex(/^[A-Za-z0-9./:@_-]+$/)
    .optional(),
  /** For `batch`: scale with a task queue; the command becomes the first task. */
  autoscale: Autoscale.optional(),
  /**
   * Names of sealed secrets (src/protocol/cluster-secrets.ts): the nodes are reserved and the
   * ranks wait until `PUT /v1/clusters/:id/secrets` brings a box per node and name.
   */
  secretNames: SecretNames.optional(),
});
export type DeployRequest = z.input<typeof DeployRequest>;

/** What a quote needs: the deploy's capacity filters, duration and currency. */
export const QuoteRequest = CapacityFilters.extend({
  /** Only nodes whose worker can run this kind's engine (as a deploy of that kind would). */
  kind: ClusterKind.optional(),
  hours: z.number().int().min(1).max(720),
  currency: CurrencyName.default("USDC"),
  autoscale: Autoscale.optional(),
});
export type QuoteRequest = z.input<typeof QuoteRequest>;

export const ClusterStatusName = z.enum([
  "pending",
  "provisioning",
  "running",
  "completed",
  "failed",
  "terminated",
  "expired",
]);
export const ClusterNodeRole = z.enum(["head", "worker", "standby"]);
export const ClusterNodeStatusName = z.enum([
  "reserved",
  "staged",
  "running",
  "exited",
  "failed",
  "released",
  /** The node failed (went offline, was revoked, could not run its part): its rank moved on. */
  "lost",
  /** The node handed its rank over on an announced drain. */
  "handed-over",
  /** A standby that took a failed node's rank (its rank continues in a new lease). */
  "promoted",
]);

export const ClusterNode = z.strictObject({
  nodeId: idSchema(IdPrefix.node),
  /** Null for a standby that holds no rank yet. */
  rank: z.number().int().nullable(),
  zone: z.string(),
  region: z.string(),
  role: ClusterNodeRole,
  status: ClusterNodeStatusName,
  /** Whether the cluster holds this node now (a lost or handed-over lease is history). */
  active: z.boolean(),
  exitCode: z.number().int().nullable(),
  pricePerHour: Amount,
  /** What this rank runs limited to: the cluster's ask over the node's offer (null: no offer known). */
  limits: RankLimits.nullable(),
});

export const ClusterEvent = z.strictObject({
  at: z.iso.datetime(),
  type: z.string(),
  detail: z.record(z.string(), z.unknown()),
});

export const ClusterView = z.strictObject({
  id: idSchema(IdPrefix.cluster),
  kind: ClusterKind,
  status: ClusterStatusName,
  hours: z.number().int(),
  /** Standby nodes asked for at deploy. */
  shadow: z.number().int(),
  autoscale: Autoscale.nullable(),
  currency: CurrencyName,
  command: z.array(z.string()),
  /** The per-rank limits asked at deploy (`{}`: each rank gets its node's offer). */
  limits: RankLimitsAsk,
  nodes: z.array(ClusterNode),
  events: z.array(ClusterEvent),
  createdAt: z.iso.datetime(),
  startedAt: z.iso.datetime().nullable(),
  endsAt: z.iso.datetime().nullable(),
  endedAt: z.iso.datetime().nullable(),
});
export type ClusterView = z.infer<typeof ClusterView>;

export const ClusterIdParams = z.strictObject({ id: idSchema(IdPrefix.cluster) });

/** `GET /v1/clusters`: a page of the caller's clusters, newest first. */
export const ClusterListQuery = z.strictObject({
  limit: PageLimit,
  /** The previous page's `nextCursor`: clusters older than it. */
  cursor: idSchema(IdPrefix.cluster).optional(),
});
export type ClusterListQuery = z.input<typeof ClusterListQuery>;

export const ClusterList = pageOf(ClusterView);

export const ExtendRequest = z.strictObject({ hours: z.number().int().min(1).max(720) });

export const LogsQuery = z.strictObject({
  /** Only lines after this sequence number. */
  after: z.coerce.number().int().min(0).optional(),
  /** A rank is below a cluster's most nodes (256); a stored rank is a 32-bit integer. */
  rank: z.coerce.number().int().min(0).max(255).optional(),
  limit: z.coerce.number().int().min(1).max(5000).default(1000),
});

export const LogLine = z.strictObject({
  seq: z.number().int(),
  rank: z.number().int(),
  stream: z.enum(["stdout", "stderr"]),
  at: z.iso.datetime(),
  text: z.string(),
});
export type LogLine = z.infer<typeof LogLine>;

export const LogPage = z.strictObject({
  items: z.array(LogLine),
  clusterStatus: ClusterStatusName,
});

export const SubmitTaskRequest = z.strictObject({ command: z.array(Argument).min(1).max(256) });

/** Most tasks one `POST /v1/clusters/:id/tasks/batch` queues (a larger list is refused whole). */
export const MAX_TASKS_PER_SUBMIT = 1000;

/** Many tasks in one request, queued in order in one transaction: all of them or none. */
export const SubmitTaskBatchRequest = z.strictObject({
  commands: z.array(z.array(Argument).min(1).max(256)).min(1).max(MAX_TASKS_PER_SUBMIT),
});

export const TaskView = z.strictObject({
  seq: z.number().int(),
  command: z.array(z.string()),
  status: z.enum(["queued", "running", "done", "failed", "cancelled"]),
  nodeId: z.string().nullable(),
  exitCode: z.number().int().nullable(),
  submittedAt: z.iso.datetime(),
  startedAt: z.iso.datetime().nullable(),
  endedAt: z.iso.datetime().nullable(),
});
export type TaskView = z.infer<typeof TaskView>;

/**
 * `GET /v1/clusters/:id/tasks`: a page of a cluster's tasks in queue order (seq ascending, the
 * order they run in), so a page's tasks never move to an earlier page as the queue grows.
 */
export const TaskListQuery = z.strictObject({
  limit: PageLimit,
  /** The previous page's `nextCursor` (its last task's seq): tasks after it. A seq is 32-bit. */
  cursor: z
    .string()
    .regex(/^\d{1,9}$/, "expected a task seq")
    .optional(),
});
export type TaskListQuery = z.input<typeof TaskListQuery>;

export const TaskList = pageOf(TaskView);

/** The tasks a batch queued: numbers `firstSeq`..`lastSeq`, in the order given. */
export const TaskBatch = z.strictObject({
  count: z.number().int(),
  firstSeq: z.number().int(),
  lastSeq: z.number().int(),
});
export type TaskBatch = z.infer<typeof TaskBatch>;
