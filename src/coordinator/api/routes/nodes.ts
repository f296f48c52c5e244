import {
  HistoryList,
  HistoryQuery,
  ListNodesQuery,
  NetworkStats,
  NodeEarnings,
  NodeIdParams,
  NodeList,
  NodeView,
  ReputationBreakdown,
  UptimeDays,
} from "../../../protocol/nodes.ts";
import { nodeEarnings } from "../../billing/node-earnings.ts";
import { uptimeDays } from "../../registry/uptime-days.ts";
import type { ApiDeps, ZodApp } from "../server.ts";

/** Public read routes: anyone may see the network (the explorer and the CLI read these). */
export function nodeRoutes(app: ZodApp, { nodes, clock, db }: ApiDeps): void {
  app.get(
    "/v1/nodes",
    { schema: { tags: ["nodes"], querystring: ListNodesQuery, response: { 200: NodeList } } },
    (request) => {
      const { limit, cursor, sort, order, ...filter } = request.query;
      return nodes.list(filter, limit, cursor, sort, order);
    },
  );

  app.get(
    "/v1/nodes/:id",
    { schema: { tags: ["nodes"], params: NodeIdParams, response: { 200: NodeView } } },
    (request) => nodes.get(request.params.id),
  );

  app.get(
    "/v1/nodes/:id/reputation",
    { schema: { tags: ["nodes"], params: NodeIdParams, response: { 200: ReputationBreakdown } } },
    (request) => nodes.reputation(request.params.id, clock.now()),
  );

  app.get(
    "/v1/nodes/:id/history",
    {
      schema: {
        tags: ["nodes"],
        params: NodeIdParams,
        querystring: HistoryQuery,
        response: { 200: HistoryList },
      },
    },
    (request) => {
      const caller = request.principal;
      return nodes.history(
        request.params.id,
        request.query.limit,
        request.query.cursor,
        caller === undefined
          ? undefined
          : { accountId: caller.accountId, admin: caller.roles.includes("admin") },
      );
    },
  );

  app.get(
    "/v1/nodes/:id/uptime",
    { schema: { tags: ["nodes"], params: NodeIdParams, response: { 200: UptimeDays } } },
    (request) => uptimeDays(db, request.params.id, clock.now()),
  );

  app.get(
    "/v1/nodes/:id/earnings",
    { schema: { tags: ["nodes"], params: NodeIdParams, response: { 200: NodeEarnings } } },
    (request) => nodeEarnings(db, request.params.id, clock.now()),
  );

  app.get(
    "/v1/network/stats",
    { schema: { tags: ["nodes"], response: { 200: NetworkStats } } },
    () => nodes.stats(),
  );
}
