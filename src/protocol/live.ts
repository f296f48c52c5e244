import { z } from "zod";
import { IdPrefix, idSchema } from "./ids.ts";
import { NodeStatusName } from "./nodes.ts";

/**
 * The public live stream, `GET /v1/events` (Server-Sent Events). Each message has an `event:` name
 * from {@link LiveEventName} and a JSON `data:` line matching that event's schema. Only public
 * facts travel here: what the explorer may show to anyone.
 *
 * On every (re)connection the first message is `hello`, carrying the coordinator's recent network
 * samples; a client that reconnects refetches what it shows, since events sent while it was away
 * are not replayed.
 */
export const LiveEventName = {
  hello: "hello",
  nodeStatus: "node.status",
  statsSample: "stats.sample",
} as const;
export type LiveEventName = (typeof LiveEventName)[keyof typeof LiveEventName];

/** Network totals at one instant, for the explorer's history charts. */
export const StatsSample = z.strictObject({
  at: z.iso.datetime(),
  nodesTotal: z.number().int(),
  nodesOnline: z.number().int(),
  gpusTotal: z.number().int(),
  gpusOnline: z.number().int(),
  /** Verified supply: GPUs of online nodes past `unverified` and not flagged. */
  nodesVerified: z.number().int(),
  gpusVerified: z.number().int(),
});
export type StatsSample = z.infer<typeof StatsSample>;

export const LiveHello = z.strictObject({
  /** Interval between samples, ms; a sample also follows node status changes. */
  sampleIntervalMs: z.number().int(),
  /** Recent samples, oldest first. */
  samples: z.array(StatsSample),
});
export type LiveHello = z.infer<typeof LiveHello>;

/** A node's status changed (a history row was appended with the same facts). */
export const LiveNodeStatus = z.strictObject({
  nodeId: idSchema(IdPrefix.node),
  from: NodeStatusName,
  to: NodeStatusName,
  at: z.iso.datetime(),
  reason: z.string(),
});
export type LiveNodeStatus = z.infer<typeof LiveNodeStatus>;
