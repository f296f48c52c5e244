import { ClusterIdParams } from "../../../protocol/clusters.ts";
import { DEFAULT_CATALOG_PRICES } from "../../../core/pricing.ts";
import {
  PriceBoard,
  PublicCluster,
  PublicClusterList,
  PublicClustersQuery,
  RegionBoard,
} from "../../../protocol/network.ts";
import { priceBoard, regionBoard } from "../../explorer/network-boards.ts";
import { PublicClusters } from "../../explorer/public-clusters.ts";
import { TtlCache } from "../../explorer/ttl-cache.ts";
import type { ApiDeps, ZodApp } from "../server.ts";

/** Prices and regions may lag this long behind the nodes table (they are counted, not kept). */
const BOARD_TTL_MS = 5000;

/** Public views of the network beyond single nodes: clusters (anonymized), prices, regions. */
export function networkRoutes(
  app: ZodApp,
  { db, config, clock }: Pick<ApiDeps, "db" | "config" | "clock">,
): void {
  const clusters = new PublicClusters(db);
  const warn = (error: unknown) => app.log.warn({ err: error }, "network board refresh failed");
  const now = () => clock.now();
  const prices = new TtlCache(
    () => priceBoard(db, DEFAULT_CATALOG_PRICES, config.pricingMode, now()),
    BOARD_TTL_MS,
    now,
    warn,
  );
  const regions = new TtlCache(() => regionBoard(db, now()), BOARD_TTL_MS, now, warn);

  app.get(
    "/v1/network/prices",
    {
      schema: {
        tags: ["network"],
        summary: "Per GPU model: catalog and market prices, availability, a hyperscaler reference",
        response: { 200: PriceBoard },
      },
    },
    () => prices.get(),
  );

  app.get(
    "/v1/network/regions",
    {
      schema: {
        tags: ["network"],
        summary: "Nodes and GPUs, total and online, per region and zone",
        response: { 200: RegionBoard },
      },
    },
    () => regions.get(),
  );

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
