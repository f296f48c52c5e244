import { HealthResponse } from "../../../protocol/system.ts";
import { PROTOCOL_VERSION } from "../../../protocol/worker-messages.ts";
import type { ApiDeps, ZodApp } from "../server.ts";

export function systemRoutes(
  app: ZodApp,
  { metrics, gateway, config, version, leadership }: ApiDeps,
): void {
  app.get(
    "/v1/health",
    { schema: { tags: ["system"], response: { 200: HealthResponse } } },
    () => ({
      status: "ok" as const,
      version,
      protocolVersion: PROTOCOL_VERSION,
      database: config.database,
      connectedWorkers: gateway.connectedWorkers,
      replica: {
        id: leadership.replicaId,
        leader: leadership.leading,
        term: leadership.term ?? null,
      },
    }),
  );

  app.get("/metrics", { schema: { hide: true } }, async (_request, reply) => {
    const text = await metrics.registry.metrics();
    return reply.type(metrics.registry.contentType).send(text);
  });

  app.get("/v1/openapi.json", { schema: { hide: true } }, () => app.swagger());
}
