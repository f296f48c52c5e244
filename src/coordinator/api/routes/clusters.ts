import { z } from "zod";
import { ErrorCode, TandemError } from "../../../core/errors.ts";
import { GPU_MODEL_IDS, gpuModelById } from "../../../core/gpu-catalog.ts";
import { CPU_ONLY_MODEL } from "../../../core/placement.ts";
import { REGION_IDS, isKnownRegion } from "../../../core/regions.ts";
import {
  ClusterIdParams,
  ClusterList,
  ClusterListQuery,
  ClusterView,
  DeployRequest,
  ExtendRequest,
  LogPage,
  LogsQuery,
  QuoteRequest,
  SearchRequest,
  SearchResponse,
  SubmitTaskBatchRequest,
  SubmitTaskRequest,
  TaskBatch,
  TaskList,
  TaskListQuery,
  TaskView,
  type CapacityFilters,
} from "../../../protocol/clusters.ts";
import { parseCurrencyOrThrow, units } from "../../../core/money.ts";
import { QuoteView } from "../../../protocol/wallet.ts";
import { quoteView } from "../../billing/wire.ts";
import { clusterView, readLogs, readTaskPage } from "../../scheduler/cluster-store.ts";
import { checkAutoscale } from "../../scheduler/deploy-request.ts";
import { actorOf, ownCluster } from "./own-cluster.ts";
import { callerOf } from "../auth.ts";
import type { ApiDeps, ZodApp } from "../server.ts";

const IdempotencyHeaders = z.object({
  "idempotency-key": z
    .string()
    .min(1)
    .max(128)
    .regex(/^[\x21-\x7e]+$/)
    .optional(),
});

/** Catalog checks zod cannot do: a GPU model and regions the network knows. */
function checkFilters(filters: Pick<CapacityFilters, "gpuModel" | "regions">): void {
  if (
    filters.gpuModel !== undefined &&
    filters.gpuModel !== CPU_ONLY_MODEL &&
    gpuModelById(filters.gpuModel) === undefined
  ) {
    const valid = [CPU_ONLY_MODEL, ...GPU_MODEL_IDS];
    throw new TandemError(
      ErrorCode.UNKNOWN_GPU_MODEL,
      `unknown GPU model ${filters.gpuModel}; one of: ${valid.join(", ")} (tandem catalog gpus)`,
      { details: { gpuModel: filters.gpuModel, valid } },
    );
  }
  const unknown = (filters.regions ?? []).filter((r) => !isKnownRegion(r));
  if (unknown.length > 0)
    throw new TandemError(
      ErrorCode.UNKNOWN_REGION,
      `unknown region ${unknown.join(", ")}; one of: ${REGION_IDS.join(", ")} (tandem catalog regions)`,
      { details: { regions: unknown, valid: [...REGION_IDS] } },
    );
}

export function clusterRoutes(
  app: ZodApp,
  { offers, deployments, ends, db, billing }: ApiDeps,
): void {
  app.post(
    "/v1/quotes",
    { schema: { tags: ["clusters"], body: QuoteRequest, response: { 200: QuoteView } } },
    (request) => {
      checkFilters(request.body);
      checkAutoscale(request.body);
      const offer = offers.offer(request.body);
      return quoteView(
        billing.quote({
          currency: parseCurrencyOrThrow(request.body.currency),
          durationMinutes: request.body.hours * 60,
          nodes: [
            ...offer.nodes.map((n) => ({ nodeId: n.nodeId, pricePerHour: n.billedPerHour })),
            ...offer.growth,
          ].map((n) => ({ nodeId: n.nodeId, pricePerHour: units(n.pricePerHour) })),
        }),
        new Set(offer.nodes.filter((n) => n.standby).map((n) => n.nodeId)),
      );
    },
  );

  app.post(
    "/v1/search",
    { schema: { tags: ["clusters"], body: SearchRequest, response: { 200: SearchResponse } } },
    (request) => {
      checkFilters(request.body);
      return offers.search(request.body);
    },
  );

  app.post(
    "/v1/clusters",
    {
      config: { roles: ["consumer"] },
      schema: {
        tags: ["clusters"],
        body: DeployRequest,
        headers: IdempotencyHeaders,
        response: { 201: ClusterView },
      },
    },
    async (request, reply) => {
      const { accountId } = callerOf(request);
      checkFilters(request.body);
      if (request.body.kind === "container" && request.body.image === undefined) {
        throw new TandemError(ErrorCode.VALIDATION_FAILED, "a container cluster needs an image");
      }
      const view = await deployments.deploy(
        accountId,
        request.body,
        request.headers["idempotency-key"],
      );
      return reply.status(201).send(view);
    },
  );

  app.get(
    "/v1/clusters",
    {
      config: { roles: ["consumer"] },
      schema: { tags: ["clusters"], querystring: ClusterListQuery, response: { 200: ClusterList } },
    },
    async (request) => {
      const { accountId } = callerOf(request);
      const { limit, cursor } = request.query;
      let query = db
        .selectFrom("clusters")
        .select("id")
        .where("account_id", "=", accountId)
        .orderBy("id", "desc")
        .limit(limit + 1);
      if (cursor !== undefined) query = query.where("id", "<", cursor);
      const rows = await query.execute();
      const page = rows.slice(0, limit);
      return {
        items: await Promise.all(page.map((r) => clusterView(db, r.id))),
        nextCursor: rows.length > limit ? page.at(-1)!.id : null,
      };
    },
  );

  app.get(
    "/v1/clusters/:id",
    {
      config: { roles: ["consumer"] },
      schema: { tags: ["clusters"], params: ClusterIdParams, response: { 200: ClusterView } },
    },
    async (request) => {
      await ownCluster(request, db);
      return clusterView(db, request.params.id);
    },
  );

  app.delete(
    "/v1/clusters/:id",
    {
      config: { roles: ["consumer"] },
      schema: { tags: ["clusters"], params: ClusterIdParams, response: { 200: ClusterView } },
    },
    async (request) => {
      return ends.terminate(request.params.id, actorOf(request));
    },
  );

  app.post(
    "/v1/clusters/:id/extend",
    {
      config: { roles: ["consumer"] },
      schema: {
        tags: ["clusters"],
        params: ClusterIdParams,
        body: ExtendRequest,
        headers: IdempotencyHeaders,
        response: { 200: ClusterView },
      },
    },
    async (request) => {
      return deployments.extend(
        request.params.id,
        actorOf(request),
        request.body.hours,
        request.headers["idempotency-key"],
      );
    },
  );

  app.post(
    "/v1/clusters/:id/tasks",
    {
      config: { roles: ["consumer"] },
      schema: {
        tags: ["clusters"],
        params: ClusterIdParams,
        body: SubmitTaskRequest,
        response: { 201: TaskView },
      },
    },
    async (request, reply) => {
      const actor = actorOf(request);
      const task = await deployments.submitTask(request.params.id, actor, request.body.command);
      return reply.status(201).send(task);
    },
  );

  app.post(
    "/v1/clusters/:id/tasks/batch",
    {
      config: { roles: ["consumer"] },
      schema: {
        tags: ["clusters"],
        params: ClusterIdParams,
        body: SubmitTaskBatchRequest,
        response: { 201: TaskBatch },
      },
    },
    async (request, reply) => {
      const { commands } = request.body;
      const first = await deployments.submitTasks(request.params.id, actorOf(request), commands);
      return reply
        .status(201)
        .send({ count: commands.length, firstSeq: first, lastSeq: first + commands.length - 1 });
    },
  );

  app.get(
    "/v1/clusters/:id/tasks",
    {
      config: { roles: ["consumer"] },
      schema: {
        tags: ["clusters"],
        params: ClusterIdParams,
        querystring: TaskListQuery,
        response: { 200: TaskList },
      },
    },
    async (request) => {
      const cluster = await ownCluster(request, db);
      return readTaskPage(db, cluster.id, request.query);
    },
  );

  app.get(
    "/v1/clusters/:id/logs",
    {
      config: { roles: ["consumer"] },
      schema: {
        tags: ["clusters"],
        params: ClusterIdParams,
        querystring: LogsQuery,
        response: { 200: LogPage },
      },
    },
    async (request) => {
      const cluster = await ownCluster(request, db);
      return {
        items: await readLogs(db, cluster.id, request.query),
        clusterStatus: cluster.status,
      };
    },
  );
}
