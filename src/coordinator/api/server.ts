import fastifyRateLimit from "@fastify/rate-limit";
import fastifySwagger from "@fastify/swagger";
import fastifyWebsocket from "@fastify/websocket";
import type { Server } from "node:http";
import Fastify, { LogController, type FastifyBaseLogger, type FastifyHttpOptions } from "fastify";
import {
  jsonSchemaTransform,
  serializerCompiler,
  validatorCompiler,
  type ZodTypeProvider,
} from "fastify-type-provider-zod";
import { z } from "zod";
import type { Clock } from "../../core/clock.ts";
import { ErrorCode, TandemError } from "../../core/errors.ts";
import type { CoordinatorEvents } from "../events.ts";
import type { WorkerGateway } from "../gateway/worker-gateway.ts";
import type { Metrics } from "../metrics.ts";
import type { AccountRegistry } from "../registry/accounts.ts";
import type { DeviceRegistry } from "../registry/devices.ts";
import type { EnrollmentTokens } from "../registry/enrollment-tokens.ts";
import type { NodeQueries } from "../registry/node-queries.ts";
import type { Billing } from "../billing/billing.ts";
import type { WalletService } from "../billing/wallet.ts";
import type { StakeService } from "../economics/stakes.ts";
import type { TokenFigures } from "../economics/token-figures.ts";
import type { ClusterEnds } from "../scheduler/cluster-ends.ts";
import type { Deployments } from "../scheduler/deployments.ts";
import type { Offers } from "../scheduler/offers.ts";
import type { TlsFiles } from "../tls.ts";
import type { ReadDb } from "../store/transaction.ts";
import type { Leadership } from "../replicas/leader-election.ts";
import type { MarketPrices } from "../registry/market-prices.ts";
import { admit, identifyCaller, rateLimitKey } from "./auth.ts";
import { clientErrorHandler, errorHandler, notFoundHandler } from "./http-errors.ts";
import { accountRoutes } from "./routes/accounts.ts";
import { clusterSecretRoutes } from "./routes/cluster-secrets.ts";
import { clusterRoutes } from "./routes/clusters.ts";
import { pricingRoutes } from "./routes/pricing.ts";
import { deviceRoutes } from "./routes/devices.ts";
import { enrollmentRoutes } from "./routes/enrollment.ts";
import { explorerRoutes } from "./routes/explorer.ts";
import { liveRoutes } from "./routes/live.ts";
import { networkRoutes } from "./routes/network.ts";
import { catalogRoutes } from "./routes/catalog.ts";
import { nodeRoutes } from "./routes/nodes.ts";
import { systemRoutes } from "./routes/system.ts";
import { stakeRoutes } from "./routes/stakes.ts";
import { tokenRoutes } from "./routes/token.ts";
import { walletRoutes } from "./routes/wallet.ts";
import type { DepositAddresses } from "../billing/solana/deposit-addresses.ts";

function createFastify(config: ApiConfig, logger: FastifyBaseLogger) {
  const options = {
    loggerInstance: logger,
    // One line per request is for debugging (`--log-level debug`, below), not a service's log.
    logController: new LogController({ disableRequestLogging: true }),
    bodyLimit: config.bodyLimitBytes,
    return503OnClosing: true,
    // A malformed URL or an over-long path parameter, refused before routing: same error body.
    frameworkErrors: (error, request, reply) => void errorHandler(error, request, reply),
    clientErrorHandler,
    ...(config.trustProxy === undefined ? {} : { trustProxy: config.trustProxy }),
  } satisfies FastifyHttpOptions<Server>;
  // With `https`, Fastify serves TLS (the worker channel's upgrades included) on the same port;
  // routes, hooks and replies are typed the same, so the app keeps the plain server's type.
  return Fastify(
    config.tls === undefined ? options : ({ ...options, https: config.tls } as typeof options),
  ).withTypeProvider<ZodTypeProvider>();
}

export type ZodApp = ReturnType<typeof createFastify>;

const NO_FIELDS = z.strictObject({});

export interface ApiConfig {
  openSignup: boolean;
  bodyLimitBytes: number;
  /** Requests per minute per account with a valid API key, else per IP (a wrong key counts too). */
  rateLimitPerMinute: number;
  database: "sqlite" | "postgres";
  /** Whether a user may credit its own wallet (`tandem dev`). */
  faucet: boolean;
  pricingMode: "catalog" | "market";
  /** The network's genesis time, ms since the epoch: emission hour 0 begins here. */
  genesisAtMs: number;
  /** Certificate and key to serve HTTPS and WSS with; absent, plain HTTP. */
  tls?: TlsFiles | undefined;
  /** Proxies whose X-Forwarded-For is believed (Fastify's `trustProxy`); absent, none. */
  trustProxy?: string | undefined;
}

export interface ApiDeps {
  config: ApiConfig;
  version: string;
  clock: Clock;
  accounts: AccountRegistry;
  devices: DeviceRegistry;
  enrollment: EnrollmentTokens;
  nodes: NodeQueries;
  gateway: WorkerGateway;
  leadership: Pick<Leadership, "replicaId" | "leading" | "term">;
  metrics: Metrics;
  /** Search and the one pricing path of quotes and deploys. */
  offers: Offers;
  deployments: Deployments;
  ends: ClusterEnds;
  /** Read access for the cluster routes' views. */
  /** Routes read through it; every write goes through a service (a lint-free type: no writes). */
  db: ReadDb;
  marketPrices: MarketPrices;
  /** Committed domain events; the live stream (`GET /v1/events`) relays the public ones. */
  events: CoordinatorEvents;
  billing: Billing;
  wallet: WalletService;
  stakes: StakeService;
  /** `GET /v1/token`'s figures, kept in memory (economics/token-figures.ts). */
  tokenFigures: TokenFigures;
  /** The Solana rail's deposit addresses; undefined when the rail is off (ManualRail only). */
  depositAddresses?: DepositAddresses | undefined;
}

/** The coordinator's HTTP and WebSocket surface; every route validates with zod at the edge. */
export async function buildApi(deps: ApiDeps, logger: FastifyBaseLogger): Promise<ZodApp> {
  const app = createFastify(deps.config, logger);
  app.setValidatorCompiler(validatorCompiler);
  app.setSerializerCompiler(serializerCompiler);
  app.setErrorHandler(errorHandler);
  app.setNotFoundHandler(notFoundHandler);
  app.decorateRequest("principal", undefined);
  app.decorateRequest("keyRefused", false);
  app.decorateRequest("device", undefined);
  // Unknown fields are refused on routes that take none too (DESIGN.md §8, rule 4).
  app.addHook("onRoute", (route) => {
    const schema = (route.schema ??= {});
    schema.querystring ??= NO_FIELDS;
    if (route.method === "POST") schema.body ??= NO_FIELDS.nullish();
    if (route.config?.roles !== undefined) schema.security ??= [{ apiKey: [] }];
  });

  await app.register(fastifySwagger, {
    openapi: {
      info: { title: "Tandem coordinator API", version: deps.version },
      components: { securitySchemes: { apiKey: { type: "http", scheme: "bearer" } } },
    },
    transform: jsonSchemaTransform,
    transformObject: (documentObject) =>
      "openapiObject" in documentObject
        ? markOptionalBodies(documentObject.openapiObject)
        : documentObject.swaggerObject,
  });
  await app.register(fastifyRateLimit, {
    max: deps.config.rateLimitPerMinute,
    timeWindow: 60_000,
    keyGenerator: rateLimitKey,
    errorResponseBuilder: (_request, context) =>
      new TandemError(
        ErrorCode.RATE_LIMITED,
        `rate limit exceeded: ${context.max} requests per minute`,
        {
          details: { retryAfterMs: context.ttl },
        },
      ),
  });
  await app.register(fastifyWebsocket, { options: { maxPayload: 1024 * 1024 } });

  // A route whose body is optional takes none at all: no payload (Fastify's body is then null) or
  // an empty one sent as JSON (Fastify refuses it before validation otherwise). A route that
  // needs a body still answers VALIDATION_FAILED.
  const json = app.getDefaultJsonParser("error", "error");
  app.removeContentTypeParser("application/json");
  app.addContentTypeParser("application/json", { parseAs: "string" }, (request, body, done) => {
    const text = body.toString();
    if (text === "") done(null, undefined);
    else void json(request, text, done);
  });
  app.addHook("preValidation", (request, _reply, done) => {
    if (request.body === null) request.body = undefined;
    done();
  });

  // The order of these steps is explained in auth.ts.
  app.addHook("onRequest", async (request) => {
    await identifyCaller(request, deps);
  });
  app.addHook("preParsing", (request, _reply, _payload, done) => {
    admit(request);
    done();
  });
  app.addHook("onResponse", async (request, reply) => {
    const route = request.routeOptions.url ?? "unmatched";
    deps.metrics.httpRequests.inc({ method: request.method, route, status: reply.statusCode });
    deps.metrics.httpDuration.observe({ method: request.method, route }, reply.elapsedTime / 1000);
    request.log.debug(
      {
        method: request.method,
        url: request.url,
        statusCode: reply.statusCode,
        responseTimeMs: reply.elapsedTime,
      },
      "request completed",
    );
  });

  systemRoutes(app, deps);
  accountRoutes(app, deps);
  deviceRoutes(app, deps);
  enrollmentRoutes(app, deps);
  nodeRoutes(app, deps);
  networkRoutes(app, deps);
  catalogRoutes(app);
  clusterRoutes(app, deps);
  clusterSecretRoutes(app, deps);
  pricingRoutes(app, deps);
  walletRoutes(app, deps);
  tokenRoutes(app, deps);
  stakeRoutes(app, deps);
  liveRoutes(app, deps);
  await explorerRoutes(app);
  app.get("/v1/workers/connect", { websocket: true, schema: { hide: true } }, (socket, request) =>
    // `request.ip`: the socket's peer, or the client a trusted proxy names.
    deps.gateway.accept(socket, request.ip),
  );
  return app;
}

/**
 * A body whose schema admits null (`.nullish()`: routes that take no fields, or only optional
 * ones) may be left out: the document says `required: false` for it.
 */
function markOptionalBodies<T>(document: T): T {
  const paths = (document as { paths?: Record<string, Record<string, unknown>> }).paths ?? {};
  for (const operations of Object.values(paths))
    for (const operation of Object.values(operations)) {
      const body = (operation as { requestBody?: { required?: boolean; content?: unknown } })
        .requestBody;
      const schema = (
        body?.content as { "application/json"?: { schema?: { nullable?: boolean } } }
      )?.["application/json"]?.schema;
      if (body !== undefined && schema?.nullable === true) body.required = false;
    }
  return document;
}
