import { ErrorCode, TandemError, assertNever } from "./errors.ts";

/**
 * Node status machine (DESIGN.md §4).
 *
 *   unverified ──verify──▶ available ⇄ leased        any ──revoke──▶ revoked (terminal)
 *        ▲  │                 │  ▲                     standby: serving as a shadow worker
 *        │  └──disconnect──▶ offline ──reconnect──▶ (unverified | available)
 *
 * `unverified` also goes offline and back, so a node is seen offline before verification exists
 * for it; it comes back to `available` only if it was verified before. An idle node that fails a
 * spot check of its hardware goes back: available ──unverify──▶ unverified.
 */
export const NodeStatus = {
  unverified: "unverified",
  available: "available",
  leased: "leased",
  standby: "standby",
  offline: "offline",
  revoked: "revoked",
} as const;
export type NodeStatus = (typeof NodeStatus)[keyof typeof NodeStatus];
export const NODE_STATUSES = Object.values(NodeStatus) as readonly NodeStatus[];

export type NodeEvent =
  | { type: "connect"; verified: boolean }
  | { type: "disconnect" }
  | { type: "verify" }
  | { type: "unverify" }
  | { type: "lease" }
  | { type: "standby" }
  | { type: "release" }
  | { type: "revoke" };

/** True while the worker is connected and counted as online for uptime. */
export function isOnline(status: NodeStatus): boolean {
  switch (status) {
    case "unverified":
    case "available":
    case "leased":
    case "standby":
      return true;
    case "offline":
    case "revoked":
      return false;
    default:
      return assertNever(status);
  }
}

/** The next status, or a TandemError INVALID_TRANSITION when the event does not apply. */
export function nextNodeStatus(from: NodeStatus, event: NodeEvent): NodeStatus {
  const to = transition(from, event);
  if (to === undefined) {
    throw new TandemError(ErrorCode.INVALID_TRANSITION, `node cannot ${event.type} while ${from}`, {
      details: { from, event: event.type },
    });
  }
  return to;
}

function transition(from: NodeStatus, event: NodeEvent): NodeStatus | undefined {
  if (from === "revoked") return undefined;
  switch (event.type) {
    case "revoke":
      return "revoked";
    case "connect":
      return from === "offline" ? (event.verified ? "available" : "unverified") : undefined;
    case "disconnect":
      return isOnline(from) ? "offline" : undefined;
    case "verify":
      return from === "unverified" ? "available" : undefined;
    case "unverify":
      // A failed or unanswered spot check: proofs run only while a node is idle, never leased.
      return from === "available" ? "unverified" : undefined;
    case "lease":
      return from === "available" || from === "standby" ? "leased" : undefined;
    case "standby":
      return from === "available" ? "standby" : undefined;
    case "release":
      return from === "leased" || from === "standby" ? "available" : undefined;
    default:
      return assertNever(event);
  }
}

/**
 * True while the node is connected and has proven its hardware: its GPUs are verified supply
 * unless the node is flagged (e.g. a GPU UUID seen on two devices).
 */
export function isProven(status: NodeStatus): boolean {
  switch (status) {
    case "available":
    case "leased":
    case "standby":
      return true;
    case "unverified":
    case "offline":
    case "revoked":
      return false;
    default:
      return assertNever(status);
  }
}
