import {
  CreateEnrollmentTokenRequest,
  ENROLLMENT_TTL_SECONDS,
  EnrollmentTokenList,
  EnrollmentTokenListQuery,
  EnrollmentTokenResponse,
} from "../../../protocol/enrollment.ts";
import { callerOf } from "../auth.ts";
import type { ApiDeps, ZodApp } from "../server.ts";

/** Tokens a supplier may make per minute, on top of the account's general budget. */
const TOKENS_PER_MINUTE = 30;

const iso = (ms: number) => new Date(ms).toISOString();

/** A supplier's enrollment tokens: made with its API key, given to a worker machine instead of it. */
export function enrollmentRoutes(app: ZodApp, { enrollment, clock, config }: ApiDeps): void {
  app.post(
    "/v1/enrollment-tokens",
    {
      config: {
        roles: ["supplier"],
        rateLimit: {
          max: Math.min(TOKENS_PER_MINUTE, config.rateLimitPerMinute),
          timeWindow: 60_000,
        },
      },
      schema: {
        tags: ["devices"],
        body: CreateEnrollmentTokenRequest.nullish(),
        response: { 201: EnrollmentTokenResponse },
      },
    },
    async (request, reply) => {
      const { accountId } = callerOf(request);
      const ttlSeconds = request.body?.ttlSeconds ?? ENROLLMENT_TTL_SECONDS.default;
      const issued = await enrollment.issue(accountId, ttlSeconds * 1000, clock.now());
      return reply.status(201).send({
        tokenId: issued.tokenId,
        token: issued.token,
        expiresAt: iso(issued.expiresAtMs),
      });
    },
  );

  app.get(
    "/v1/enrollment-tokens",
    {
      config: { roles: ["supplier"] },
      schema: {
        tags: ["devices"],
        querystring: EnrollmentTokenListQuery,
        response: { 200: EnrollmentTokenList },
      },
    },
    async (request) => {
      const { accountId } = callerOf(request);
      const tokens = await enrollment.list(accountId, request.query);
      return {
        items: tokens.items.map((t) => ({
          tokenId: t.tokenId,
          createdAt: iso(t.createdAtMs),
          expiresAt: iso(t.expiresAtMs),
          usedAt: t.usedAtMs === null ? null : iso(t.usedAtMs),
          deviceId: t.deviceId,
        })),
        nextCursor: tokens.nextCursor,
      };
    },
  );
}
