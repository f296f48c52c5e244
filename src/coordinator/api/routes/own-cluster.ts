import type { FastifyRequest } from "fastify";
import { authorizeCluster, type ClusterActor } from "../../scheduler/cluster-access.ts";
import { loadCluster } from "../../scheduler/cluster-store.ts";
import { callerOf } from "../auth.ts";
import type { ApiDeps } from "../server.ts";

/** The cluster, if the caller may see it (authorizeCluster); someone else's is "not found". */
export async function ownCluster(
  request: FastifyRequest & { params: { id: string } },
  db: ApiDeps["db"],
) {
  const cluster = await loadCluster(db, request.params.id);
  authorizeCluster(cluster, actorOf(request), "view");
  return cluster;
}

/** The caller as a cluster actor. */
export function actorOf(request: FastifyRequest): ClusterActor {
  const principal = callerOf(request);
  return { accountId: principal.accountId, admin: principal.roles.includes("admin") };
}
