import type { NodeView } from "../../../src/protocol/nodes.ts";

export type NodeStatusName = NodeView["status"];

const LABELS: Record<NodeStatusName, string> = {
  unverified: "unverified",
  available: "available",
  leased: "leased",
  standby: "standby",
  offline: "offline",
  revoked: "revoked",
};

/** A node's status as a dot and its name (never colour alone). */
export function StatusBadge({ status, testId }: { status: NodeStatusName; testId?: string }) {
  return (
    <span className={`badge badge-${status}`} data-testid={testId} data-status={status}>
      <span className="badge-dot" aria-hidden="true" />
      {LABELS[status]}
    </span>
  );
}
