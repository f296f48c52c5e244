import { z } from "zod";
import { PROTOCOL_VERSION } from "../../../protocol/worker-messages.ts";
import type { ApiDeps, ZodApp } from "../server.ts";

export const HealthResponse = z.strictObject({
  status: z.literal("ok"),
  version: z.string(),
  protocolVersion: z.number().int(),
  database: z.enum(["sqlite", "postgres"]),
  connectedWorkers: z.number().int(),
});

export function systemRoutes(app: ZodApp, { metrics, gateway, config, version }: ApiDeps): void {
  app.get(
    "/v1/health",
    { schema: { tags: ["system"], response: { 200: HealthResponse } } },
    () => ({
      status: "ok" as const,
      version,
      protocolVersion: PROTOCOL_VERSION,
      database: config.database,
      connectedWorkers: gateway.connectedWorkers,
    }),
  );

  app.get("/metrics", { schema: { hide: true } }, async (_request, reply) => {
    const text = await metrics.registry.metrics();
    return reply.type(metrics.registry.contentType).send(text);
  });

  app.get("/v1/openapi.json", { schema: { hide: true } }, () => app.swagger());
}
