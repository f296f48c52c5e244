import { ClusterIdParams } from "../../../protocol/clusters.ts";
import {
  PublicCluster,
  PublicClusterList,
  PublicClustersQuery,
} from "../../../protocol/network.ts";
import { PublicClusters } from "../../explorer/public-clusters.ts";
import type { ApiDeps, ZodApp } from "../server.ts";

/** Public views of the network beyond single nodes: clusters (anonymized). */
export function networkRoutes(app: ZodApp, { db }: Pick<ApiDeps, "db">): void {
  const clusters = new PublicClusters(db);

  app.get(
    "/v1/network/clusters",
    {
      schema: {
        tags: ["network"],
        summary: "Clusters, anonymized: kind, size, GPU model, regions, status, public events",
        querystring: PublicClustersQuery,
        response: { 200: PublicClusterList },
      },
    },
    (request) => {
      const { limit, cursor, status } = request.query;
      return clusters.list({ status }, limit, cursor);
    },
  );

  app.get(
    "/v1/network/clusters/:id",
    {
      schema: {
        tags: ["network"],
        params: ClusterIdParams,
        response: { 200: PublicCluster },
      },
    },
    (request) => clusters.get(request.params.id),
  );
}
