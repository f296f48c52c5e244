import { ErrorCode, TandemError } from "./errors.ts";

/**
 * Cluster status machine (DESIGN.md §4):
 *
 *   pending → provisioning → running → completed | failed | terminated | expired
 *                  └──────────────→ failed | terminated
 *
 * `provisioning`: nodes reserved, workers starting their ranks (each must accept within the
 * reservation TTL). `running`: every rank accepted; paid time runs from here. The four ends are
 * final: every node is released and unserved time refunded on each of them.
 */
export const ClusterStatus = {
  pending: "pending",
  provisioning: "provisioning",
  running: "running",
  completed: "completed",
  failed: "failed",
  terminated: "terminated",
  expired: "expired",
} as const;
export type ClusterStatus = (typeof ClusterStatus)[keyof typeof ClusterStatus];
export type FinalClusterStatus = Extract<
  ClusterStatus,
  "completed" | "failed" | "terminated" | "expired"
>;

/** A named change of a cluster's status. */
export type ClusterTransition =
  /** Every rank accepted: paid time runs from now. */
  | { type: "start" }
  /** The one end path (scheduler/cluster-ends.ts): settled, refunded, every node released. */
  | { type: "end"; as: FinalClusterStatus };

const NEXT: Readonly<Record<ClusterStatus, readonly ClusterStatus[]>> = {
  pending: ["provisioning", "failed", "terminated"],
  provisioning: ["running", "failed", "terminated"],
  running: ["completed", "failed", "terminated", "expired"],
  completed: [],
  failed: [],
  terminated: [],
  expired: [],
};

export function isFinal(status: ClusterStatus): boolean {
  return NEXT[status].length === 0;
}

export function canMove(from: ClusterStatus, to: ClusterStatus): boolean {
  return NEXT[from].includes(to);
}

/** The status `transition` leads to from `from`, or undefined when it is not allowed. */
export function nextClusterStatus(
  from: ClusterStatus,
  transition: ClusterTransition,
): ClusterStatus | undefined {
  const to = transition.type === "start" ? "running" : transition.as;
  return canMove(from, to) ? to : undefined;
}

export function assertClusterTransition(from: ClusterStatus, to: ClusterStatus): void {
  if (!canMove(from, to)) {
    throw new TandemError(ErrorCode.INVALID_TRANSITION, `cluster cannot go from ${from} to ${to}`, {
      details: { from, to },
    });
  }
}

/** Whole minutes served between `startMs` and `endMs`, capped at the paid minutes: a partial minute is not served time. */
export function servedMinutes(startMs: number, endMs: number, paidMinutes: number): number {
  return Math.max(0, Math.min(paidMinutes, Math.floor((endMs - startMs) / 60_000)));
}
