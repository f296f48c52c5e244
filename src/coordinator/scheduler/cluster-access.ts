import { ErrorCode, TandemError } from "../../core/errors.ts";

/** Who acts on a cluster: an account, and whether it is an admin. */
export interface ClusterActor {
  accountId: string;
  admin: boolean;
}

/** What an actor does to a cluster. */
export type ClusterAction = "view" | "terminate" | "extend" | "seal-secrets" | "submit-task";

/**
 * The one ownership rule of every cluster route and action: the owner may do anything; an admin
 * may look at any cluster and end it (an operator's stop), but never spend the owner's money or
 * hand it secrets or work. Anyone else is told the cluster does not exist (NOT_FOUND), so ids of
 * other accounts' clusters cannot be probed.
 */
export function authorizeCluster(
  cluster: { id: string; accountId: string },
  actor: ClusterActor,
  action: ClusterAction,
): void {
  if (cluster.accountId === actor.accountId) return;
  if (actor.admin && (action === "view" || action === "terminate")) return;
  throw new TandemError(ErrorCode.NOT_FOUND, `no cluster ${cluster.id}`);
}
