import { z } from "zod";
import { ErrorCode, TandemError } from "../../../core/errors.ts";
import {
  AccountView,
  ApiKeyIdParams,
  ApiKeyList,
  ApiKeyListQuery,
  CreateAccountRequest,
  CreateAccountResponse,
  CreateApiKeyResponse,
} from "../../../protocol/accounts.ts";
import { callerOf } from "../auth.ts";
import type { ApiDeps, ZodApp } from "../server.ts";

const iso = (ms: number) => new Date(ms).toISOString();

export function accountRoutes(app: ZodApp, { accounts, clock, config }: ApiDeps): void {
  app.post(
    "/v1/accounts",
    {
      schema: {
        tags: ["accounts"],
        body: CreateAccountRequest,
        response: { 201: CreateAccountResponse },
      },
    },
    async (request, reply) => {
      if (!config.openSignup && !request.principal?.roles.includes("admin")) {
        throw new TandemError(
          ErrorCode.SIGNUP_CLOSED,
          "sign-up is closed on this coordinator; ask an admin",
        );
      }
      const created = await accounts.createAccount(request.body.roles, clock.now());
      return reply.status(201).send({ ...created, roles: [...new Set(request.body.roles)].sort() });
    },
  );

  app.get(
    "/v1/accounts/me",
    {
      config: { roles: ["consumer", "supplier"] },
      schema: { tags: ["accounts"], response: { 200: AccountView } },
    },
    async (request) => {
      const { accountId } = callerOf(request);
      const account = await accounts.getAccount(accountId);
      return { accountId, roles: account.roles, createdAt: iso(account.createdAtMs) };
    },
  );

  app.post(
    "/v1/api-keys",
    {
      config: { roles: ["consumer", "supplier"] },
      schema: { tags: ["accounts"], response: { 201: CreateApiKeyResponse } },
    },
    async (request, reply) => {
      const { accountId } = callerOf(request);
      return reply.status(201).send(await accounts.createApiKey(accountId, clock.now()));
    },
  );

  app.get(
    "/v1/api-keys",
    {
      config: { roles: ["consumer", "supplier"] },
      schema: { tags: ["accounts"], querystring: ApiKeyListQuery, response: { 200: ApiKeyList } },
    },
    async (request) => {
      const { accountId } = callerOf(request);
      const keys = await accounts.listApiKeys(accountId, request.query);
      return {
        items: keys.items.map((k) => ({
          id: k.id,
          prefix: k.prefix,
          createdAt: iso(k.createdAtMs),
          revokedAt: k.revokedAtMs === null ? null : iso(k.revokedAtMs),
        })),
        nextCursor: keys.nextCursor,
      };
    },
  );

  app.post(
    "/v1/api-keys/:id/revoke",
    {
      config: { roles: ["consumer", "supplier"] },
      schema: {
        tags: ["accounts"],
        params: ApiKeyIdParams,
        response: { 200: z.strictObject({ id: z.string(), revokedAt: z.iso.datetime() }) },
      },
    },
    async (request) => {
      const { accountId } = callerOf(request);
      const revokedAtMs = await accounts.revokeApiKey(accountId, request.params.id, clock.now());
      return { id: request.params.id, revokedAt: iso(revokedAtMs) };
    },
  );
}
