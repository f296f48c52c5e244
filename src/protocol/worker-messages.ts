import { z } from "zod";
import { IdPrefix, idSchema } from "./ids.ts";
import { PublicKey, Signature } from "./devices.ts";
import { SealedBox, SecretName } from "./cluster-secrets.ts";
import { JobStartTls } from "./cluster-tls.ts";
import { ExceededLimit, RankLimitsAsk } from "./hardware.ts";
import { JobNetworkMessage, JobNetworkSpec, JobPeersMessage } from "./cluster-network.ts";

/** Bumped on any incompatible change to the worker channel. */
export const PROTOCOL_VERSION = 6;

/** WebSocket close codes the coordinator uses, so a worker knows whether to retry. */
export const CloseCode = {
  authFailed: 4401,
  revoked: 4403,
  badMessage: 4400,
  replaced: 4409,
  /** The node's GPU health check failed; the worker reconnects slowly until it passes. */
  unhealthy: 4503,
  shuttingDown: 1001,
  /** Too many connections waiting to authenticate (from this address, or in all): retry later. */
  tryAgainLater: 1013,
} as const;

// coordinator → worker

export const ChallengeMessage = z.strictObject({
  type: z.literal("challenge"),
  nonce: z.string().min(32).max(128),
  protocolVersion: z.number().int(),
});

export const WelcomeMessage = z.strictObject({
  type: z.literal("welcome"),
  nodeId: idSchema(IdPrefix.node),
  heartbeatIntervalMs: z.number().int().positive(),
  /**
   * Self-fencing budget: a worker that has heard nothing from the coordinator for this long stops
   * every job by itself, before the coordinator can declare it dead and give its ranks to another
   * node (DESIGN.md §5.7), so a rank never runs on two nodes at once.
   */
  fenceAfterMs: z.number().int().positive(),
});

/**
 * What a device of the node is, as a proof names it: a GPU by its UUID (the hardware report's), or
 * one CPU core of a CPU-only node ("cpu:0", "cpu:1", …).
 */
export const ProofDeviceRef = z.string().min(1).max(128);

/**
 * Starts a proof of hardware (src/core/hardware-proof.ts): one workload per device, every device
 * of the node at once. A GPU also allocates and fills `fillMiB` of its memory while it works.
 */
export const ProveMessage = z.strictObject({
  type: z.literal("prove"),
  proofId: z.string().min(1).max(64),
  devices: z
    .array(
      z.strictObject({
        device: ProofDeviceRef,
        kind: z.enum(["gpu", "cpu"]),
        seed: z.number().int().min(0).max(0xffffffff),
        n: z.number().int().min(1).max(1_048_576),
        k: z.number().int().min(1).max(4_194_304),
        fillMiB: z.number().int().min(0).max(4_194_304),
      }),
    )
    .min(1)
    .max(256),
});

/** Asks the worker to reveal these cells of the products it committed to. */
export const ProveOpenMessage = z.strictObject({
  type: z.literal("prove-open"),
  proofId: z.string().min(1).max(64),
  cells: z
    .array(
      z.strictObject({
        device: ProofDeviceRef,
        row: z.number().int().min(0),
        col: z.number().int().min(0),
      }),
    )
    .max(4096),
});

const ClusterId = idSchema(IdPrefix.cluster);
const Rank = z.number().int().min(0).max(4096);
/**
 * Which run of a rank a job message belongs to. A rank restarted after a failover runs under a
 * higher attempt; messages from an older attempt (a late exit of a stopped run) are ignored.
 */
const Attempt = z.number().int().min(0).max(1_000_000);

/**
 * Starts one rank of a cluster. The head (rank 0) gets no rendezvous address: it picks its port
 * and reports it in `job-accepted`; the other ranks are then started with the head's address.
 */
/** Most tasks one `job-start` hands a node (their commands together at most 16 KiB of JSON). */
export const MAX_TASKS_PER_RUN = 32;

/** One task of a task run: its number in the cluster's queue and its command. */
export const JobTask = z.strictObject({
  seq: z.number().int().min(1),
  command: z.array(z.string().max(4096)).min(1).max(256),
});

/** How one task of a task run ended: its exit code (null: it never ended by itself). */
export const TaskExit = z.strictObject({
  seq: z.number().int().min(1),
  exitCode: z.number().int().nullable(),
});
export type TaskExit = z.infer<typeof TaskExit>;

export const JobStartMessage = z.strictObject({
  type: z.literal("job-start"),
  clusterId: ClusterId,
  rank: Rank,
  attempt: Attempt,
  worldSize: z.number().int().min(1).max(4096),
  kind: z.enum(["batch", "torch", "dask", "ray", "container"]),
  command: z.array(z.string().max(4096)).min(1).max(256),
  env: z.record(z.string(), z.string().max(4096)),
  image: z.string().max(256).nullable(),
  head: z
    .strictObject({ address: z.string().max(256), port: z.number().int().min(1).max(65_535) })
    .nullable(),
  /**
   * Secrets sealed to this node's device key (src/protocol/sealed-secrets.ts), by name: the
   * worker opens them into the job's environment. The coordinator cannot read them.
   */
  secrets: z.record(SecretName, SealedBox).optional(),
  /** The cluster's engine TLS material (kinds dask and ray; ./cluster-tls.ts). */
  tls: JobStartTls.optional(),
  /** The cluster's ask (within what the node offers); absent or partial: the node's offer. */
  limits: RankLimitsAsk.optional(),
  /**
   * The rank's own network namespace: internet or not, and whether it joins the cluster's overlay
   * (src/protocol/cluster-network.ts). Absent: the host's network (a coordinator from before).
   */
  network: JobNetworkSpec.optional(),
  /**
   * Several queued tasks of an autoscaled `batch` cluster handed over at once (issue 20): the
   * worker runs them one after another in this one sandbox, each as its own process, in place of
   * `command`, and reports each one's exit in the run's `job-exit` (`taskExits`). `attempt` is the
   * first task's number. Absent: `command` is the one task (or rank) to run.
   */
  tasks: z.array(JobTask).min(1).max(MAX_TASKS_PER_RUN).optional(),
});
export type JobStartMessage = z.infer<typeof JobStartMessage>;

/** Ends every process of the cluster on this worker. */
export const JobStopMessage = z.strictObject({
  type: z.literal("job-stop"),
  clusterId: ClusterId,
  reason: z.string().max(200),
});

/**
 * The coordinator has recorded a `job-exit`: the worker may forget it. Until then the worker sends
 * it again after every welcome, so an exit sent while the link (or the coordinator) was down is
 * not lost.
 */
export const JobExitAckMessage = z.strictObject({
  type: z.literal("job-exit-ack"),
  clusterId: ClusterId,
  rank: Rank,
  attempt: Attempt,
});
export type JobExitAckMessage = z.infer<typeof JobExitAckMessage>;

/**
 * Failover of a cluster with sealed secrets to a fresh node (which holds no box): a surviving
 * worker of the cluster opens its own boxes (`secrets`, sealed to it) and seals each value again to
 * `publicKey`, the device key of `toNodeId`, answering `secrets-resealed`. Values stay inside
 * workers of the cluster; the coordinator relays boxes only.
 */
export const SecretsResealMessage = z.strictObject({
  type: z.literal("secrets-reseal"),
  clusterId: ClusterId,
  toNodeId: idSchema(IdPrefix.node),
  publicKey: PublicKey,
  secrets: z.record(SecretName, SealedBox),
});
export type SecretsResealMessage = z.infer<typeof SecretsResealMessage>;

/** The coordinator has handed over or finished every rank of a draining worker: it may stop now. */
export const DrainedMessage = z.strictObject({ type: z.literal("drained") });

export const CoordinatorMessage = z.discriminatedUnion("type", [
  ChallengeMessage,
  WelcomeMessage,
  ProveMessage,
  ProveOpenMessage,
  JobStartMessage,
  JobStopMessage,
  JobExitAckMessage,
  DrainedMessage,
  SecretsResealMessage,
  JobPeersMessage,
]);
export type CoordinatorMessage = z.infer<typeof CoordinatorMessage>;

// worker → coordinator

export const AuthMessage = z.strictObject({
  type: z.literal("auth"),
  deviceId: idSchema(IdPrefix.device),
  signature: Signature,
  /**
   * The address the worker's host has on its side of this link (or its `--public-address`): the
   * coordinator compares it with the address it sees, and a difference means the node is behind
   * NAT (placement takes at most one such node per cluster overlay). Absent: not known, as from a
   * worker before it.
   */
  localAddress: z.ipv4().optional(),
});
export type AuthMessage = z.infer<typeof AuthMessage>;

export const Utilization = z.strictObject({
  cpuPct: z.number().min(0).max(100),
  memoryUsedMiB: z.number().int().min(0),
  gpus: z
    .array(
      z.strictObject({
        index: z.number().int().min(0).max(63),
        utilizationPct: z.number().min(0).max(100).nullable(),
        temperatureC: z.number().min(-50).max(200).nullable(),
      }),
    )
    .max(64),
  /**
   * Set when the worker's GPU health check fails (a registered GPU gone, nvidia-smi not
   * answering): the coordinator declares the node failed and moves its ranks.
   */
  gpuFault: z.string().max(200).optional(),
});
export type Utilization = z.infer<typeof Utilization>;

export const HeartbeatMessage = z.strictObject({
  type: z.literal("heartbeat"),
  seq: z.number().int().min(0),
  utilization: Utilization,
});

/** Sent by a worker that is stopping on purpose: it goes offline at once, not after missed beats. */
export const ByeMessage = z.strictObject({
  type: z.literal("bye"),
  reason: z.string().max(200),
});

/**
 * An announced stop (`tandem worker drain`): the coordinator takes no new lease on this node,
 * hands its ranks to standbys or fresh nodes where it can (no slash), lets the rest finish, then
 * answers `drained`.
 */
export const DrainMessage = z.strictObject({
  type: z.literal("drain"),
  reason: z.string().max(200),
});

/** A SHA-256 hash, base64url without padding. */
export const Hash32 = z.string().regex(/^[A-Za-z0-9_-]{43}$/);

/** One opened cell: its whole leaf (up to 256 int32 cells) and the leaf's Merkle path. */
export const RevealedCell = z.strictObject({
  row: z.number().int().min(0),
  col: z.number().int().min(0),
  leaf: z
    .array(
      z
        .number()
        .int()
        .min(-(2 ** 31))
        .max(2 ** 31 - 1),
    )
    .min(1)
    .max(256),
  path: z.array(Hash32).max(64),
});

/**
 * The worker's commitment: per device, the Merkle root of its product and its own measure of the
 * work, or why that device could not do it (no GPU helper, out of memory, a CUDA error).
 */
export const ProveCommitMessage = z.strictObject({
  type: z.literal("prove-commit"),
  proofId: z.string().min(1).max(64),
  devices: z
    .array(
      z.union([
        z.strictObject({
          device: ProofDeviceRef,
          root: Hash32,
          computeMs: z.number().min(0).max(86_400_000),
          /** MiB the device held while it worked (a GPU's fill and operands). */
          allocatedMiB: z.number().int().min(0).max(4_194_304),
        }),
        z.strictObject({ device: ProofDeviceRef, error: z.string().max(500) }),
      ]),
    )
    .max(256),
});

/** Each opened cell's leaf (up to 256 int32 cells) and its Merkle path. */
export const ProveRevealMessage = z.strictObject({
  type: z.literal("prove-reveal"),
  proofId: z.string().min(1).max(64),
  cells: z.array(RevealedCell.extend({ device: ProofDeviceRef })).max(4096),
});

/**
 * The head (rank 0) has chosen its rendezvous port and is starting: the coordinator starts the
 * other ranks at once, beside the head's own launch instead of after it. `job-accepted` follows.
 */
export const JobRendezvousMessage = z.strictObject({
  type: z.literal("job-rendezvous"),
  clusterId: ClusterId,
  rank: z.literal(0),
  attempt: Attempt,
  port: z.number().int().min(1).max(65_535),
  /** The head listens on the cluster overlay: its peers reach it at overlayAddressOf(0). */
  overlay: z.literal(true).optional(),
});

/** The rank's processes exist; the head reports its rendezvous port. */
export const JobAcceptedMessage = z.strictObject({
  type: z.literal("job-accepted"),
  clusterId: ClusterId,
  rank: Rank,
  attempt: Attempt,
  port: z.number().int().min(1).max(65_535).nullable(),
  /** As in `job-rendezvous`: the head's port is on the cluster overlay. */
  overlay: z.literal(true).optional(),
});

/** Output of a rank, a batch of lines. */
export const JobLogMessage = z.strictObject({
  type: z.literal("job-log"),
  clusterId: ClusterId,
  rank: Rank,
  attempt: Attempt,
  stream: z.enum(["stdout", "stderr"]),
  lines: z.array(z.string().max(8192)).min(1).max(500),
});

/** The rank ended (or could not start: exitCode null, `error` says why). */
export const JobExitMessage = z.strictObject({
  type: z.literal("job-exit"),
  clusterId: ClusterId,
  rank: Rank,
  attempt: Attempt,
  exitCode: z.number().int().nullable(),
  signal: z.string().max(32).nullable(),
  error: z.string().max(1000).nullable(),
  /**
   * The worker stopped the run itself, having lost contact with the coordinator (self-fencing).
   * Reaching a lease still active, it means the coordinator was the one away (a restart): the
   * rank moves on without a slash.
   */
  fenced: z.literal(true).optional(),
  /**
   * A sealed secret of the `job-start` did not open on this device (sealed to another key, for
   * another binding, or changed on the way): the consumer's doing, so the cluster fails unblamed.
   */
  secretsRefused: z.literal(true).optional(),
  /** The rank ended by exceeding this limit of its node (the consumer's job, not the node). */
  limitExceeded: ExceededLimit.optional(),
  /**
   * Why a rank could not start (with `exitCode` null and an `error`), as the worker classes it:
   * `image-missing` and `invalid-job` are the consumer's (no slash, no failover); `start-failed`,
   * or none, is the node's (src/core/rank-end-cause.ts).
   */
  startFailure: z.enum(["image-missing", "invalid-job", "start-failed"]).optional(),
  /** A task run's tasks that ended, in order (a `job-start` with `tasks`); the rest never did. */
  taskExits: z.array(TaskExit).max(MAX_TASKS_PER_RUN).optional(),
});

/** A `secrets-reseal` answered: the boxes sealed to `toNodeId`, by name. */
export const SecretsResealedMessage = z.strictObject({
  type: z.literal("secrets-resealed"),
  clusterId: ClusterId,
  toNodeId: idSchema(IdPrefix.node),
  secrets: z.record(SecretName, SealedBox),
});
export type SecretsResealedMessage = z.infer<typeof SecretsResealedMessage>;

export const WorkerMessage = z.discriminatedUnion("type", [
  JobRendezvousMessage,
  JobAcceptedMessage,
  JobLogMessage,
  JobExitMessage,
  AuthMessage,
  HeartbeatMessage,
  ByeMessage,
  DrainMessage,
  ProveCommitMessage,
  ProveRevealMessage,
  SecretsResealedMessage,
  JobNetworkMessage,
]);
export type WorkerMessage = z.infer<typeof WorkerMessage>;

/** What a worker says about its jobs and its drain: the gateway hands these to the scheduler. */
export type WorkerJobMessage = Extract<
  WorkerMessage,
  {
    type:
      | "job-rendezvous"
      | "job-accepted"
      | "job-log"
      | "job-exit"
      | "drain"
      | "secrets-resealed"
      | "job-network";
  }
>;
