import { ClusterSecretsView, PutSecretsRequest } from "../../../protocol/cluster-secrets.ts";
import { ClusterIdParams } from "../../../protocol/clusters.ts";
import { secretsView } from "../../scheduler/cluster-secrets.ts";
import { loadCluster } from "../../scheduler/cluster-store.ts";
import { actorOf, ownCluster } from "./own-cluster.ts";
import type { ApiDeps, ZodApp } from "../server.ts";

/**
 * Sealed secrets of a cluster (src/coordinator/scheduler/cluster-secrets.ts): the nodes to seal
 * to, and the boxes sealed on the consumer's machine. Values never reach this server.
 */
export function clusterSecretRoutes(app: ZodApp, { deployments, db }: ApiDeps): void {
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
      return secretsView(db, await ownCluster(request, db));
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
      await deployments.sealSecrets(request.params.id, actorOf(request), request.body.boxes);
      return secretsView(db, await loadCluster(db, request.params.id));
    },
  );
}
