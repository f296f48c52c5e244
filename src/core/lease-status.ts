import { ErrorCode, TandemError } from "./errors.ts";

/**
 * Lease status machine (DESIGN.md §4). A lease is one node held by one cluster; a rank that moves
 * gets a new lease on its new node. Whether the lease still holds its node is a second fact
 * (`active`): a rank that exited keeps its node until its cluster ends.
 *
 *   reserved ──accept──→ running ──exit──→ exited | failed
 *      │  ↑                 │
 *      │  └─────assign──── staged ←──idle── (an autoscaled node between tasks)
 *      └──exit──→ exited | failed           (an exit whose accept was lost)
 *
 *   restart: reserved | running | exited | failed → reserved   (a full restart, new attempt)
 *   leave:   any held status → lost | handed-over | promoted | released   (stops holding early)
 *   release: reserved | running | staged → released; exited | failed keep theirs (cluster's end)
 *
 * `staged`: held and billed, running nothing (a standby, or an autoscaled node between tasks).
 * `reserved`: a start was sent; the worker must accept before the reservation lapses.
 */
export const LeaseStatus = {
  reserved: "reserved",
  staged: "staged",
  running: "running",
  exited: "exited",
  failed: "failed",
  released: "released",
  lost: "lost",
  handedOver: "handed-over",
  promoted: "promoted",
} as const;
export type LeaseStatus = (typeof LeaseStatus)[keyof typeof LeaseStatus];

/** How a lease stops holding its node before its cluster ends. */
export type LeaseLeave = Extract<LeaseStatus, "lost" | "handed-over" | "promoted" | "released">;

/** A named change of a lease's status. */
export type LeaseTransition =
  /** Its worker accepted the start. */
  | { type: "accept" }
  /** Its rank's process ended. */
  | { type: "exit"; ok: boolean }
  /** An idle autoscaled node was given a task. */
  | { type: "assign" }
  /** An autoscaled node's task ended: it waits for the next. */
  | { type: "idle" }
  /** Every rank runs again under a new attempt (a failover that restarts the whole cluster). */
  | { type: "restart" }
  /** It stops holding its node before the cluster ends. */
  | { type: "leave"; as: LeaseLeave }
  /** Its cluster ended. */
  | { type: "release" };

const HELD: readonly LeaseStatus[] = ["reserved", "staged", "running", "exited", "failed"];

/** Whether a lease in `status` may still hold its node (the others have left their cluster). */
export function isHeld(status: LeaseStatus): boolean {
  return HELD.includes(status);
}

/** The status `transition` leads to from `from`, or undefined when it is not allowed. */
export function nextLeaseStatus(
  from: LeaseStatus,
  transition: LeaseTransition,
): LeaseStatus | undefined {
  switch (transition.type) {
    case "accept":
      return from === "reserved" ? "running" : undefined;
    case "exit":
      return from === "reserved" || from === "running"
        ? transition.ok
          ? "exited"
          : "failed"
        : undefined;
    case "assign":
      return from === "staged" ? "reserved" : undefined;
    case "idle":
      return from === "reserved" || from === "running" ? "staged" : undefined;
    case "restart":
      return from === "staged" || !isHeld(from) ? undefined : "reserved";
    case "leave":
      return isHeld(from) ? transition.as : undefined;
    case "release":
      return from === "exited" || from === "failed" ? from : isHeld(from) ? "released" : undefined;
  }
}

/** Parses a stored status; a value outside the union is a broken invariant. */
export function parseLeaseStatus(value: string): LeaseStatus {
  if (!(Object.values(LeaseStatus) as string[]).includes(value))
    throw new TandemError(ErrorCode.INTERNAL, `unknown lease status ${JSON.stringify(value)}`);
  return value as LeaseStatus;
}
