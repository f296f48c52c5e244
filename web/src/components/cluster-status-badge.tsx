import type { ClusterView } from "../../../src/protocol/clusters.ts";

export type ClusterStatusName = ClusterView["status"];

/** A cluster's status as a dot and its name (never colour alone). */
export function ClusterStatusBadge({
  status,
  testId,
}: {
  status: ClusterStatusName;
  testId?: string;
}) {
  return (
    <span className={`badge badge-cluster-${status}`} data-testid={testId} data-status={status}>
      <span className="badge-dot" aria-hidden="true" />
      {status}
    </span>
  );
}
