import { z } from "zod";
import { IdPrefix, idSchema } from "./ids.ts";
import { Signature } from "./devices.ts";

/** Bumped on any incompatible change to the worker channel. */
export const PROTOCOL_VERSION = 1;

/** WebSocket close codes the coordinator uses, so a worker knows whether to retry. */
export const CloseCode = {
  authFailed: 4401,
  revoked: 4403,
  badMessage: 4400,
  replaced: 4409,
  shuttingDown: 1001,
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
});

export const CoordinatorMessage = z.discriminatedUnion("type", [ChallengeMessage, WelcomeMessage]);
export type CoordinatorMessage = z.infer<typeof CoordinatorMessage>;

// worker → coordinator

export const AuthMessage = z.strictObject({
  type: z.literal("auth"),
  deviceId: idSchema(IdPrefix.device),
  signature: Signature,
});

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

export const WorkerMessage = z.discriminatedUnion("type", [
  AuthMessage,
  HeartbeatMessage,
  ByeMessage,
]);
export type WorkerMessage = z.infer<typeof WorkerMessage>;
