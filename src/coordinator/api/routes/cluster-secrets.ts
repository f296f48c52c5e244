import { ErrorCode, TandemError } from "../../../core/errors.ts";
import { ClusterSecretsView, PutSecretsRequest } from "../../../protocol/cluster-secrets.ts";
import { ClusterIdParams } from "../../../protocol/clusters.ts";
import { secretsView } from "../../scheduler/cluster-secrets.ts";
import { loadCluster } from "../../scheduler/cluster-store.ts";
import { callerOf } from "../auth.ts";
import type { ApiDeps, ZodApp } from "../server.ts";

/**
 * Sealed secrets of a cluster (src/coordinator/scheduler/cluster-secrets.ts): the nodes to seal
 * to, and the boxes sealed on the consumer's machine. Values never reach this server.
 */
export function clusterSecretRoutes(app: ZodApp, { scheduler, db }: ApiDeps): void {
  app.get(
    "/v1/clusters/:id/secrets",
    {
      config: { roles: ["consumer"] },
      schema: {
        tags: ["clusters"],
        params: ClusterIdParams,
        response: { 200: ClusterSecretsView },
      },
    },
    async (request) => {
      const principal = callerOf(request);
      const cluster = await loadCluster(db, request.params.id);
      if (cluster.accountId !== principal.accountId)
        throw new TandemError(ErrorCode.NOT_FOUND, `no cluster ${request.params.id}`);
      return secretsView(db, cluster);
    },
  );

  app.put(
    "/v1/clusters/:id/secrets",
    {
      config: { roles: ["consumer"] },
      schema: {
        tags: ["clusters"],
        params: ClusterIdParams,
        body: PutSecretsRequest,
        response: { 200: ClusterSecretsView },
      },
    },
    async (request) => {
      const { accountId } = callerOf(request);
      await scheduler.sealSecrets(request.params.id, accountId, request.body.boxes);
      return secretsView(db, await loadCluster(db, request.params.id));
    },
  );
}
