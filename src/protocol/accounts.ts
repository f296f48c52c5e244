import { z } from "zod";
import { IdPrefix, idSchema } from "./ids.ts";
import { PageLimit, pageOf } from "./paging.ts";

export const Role = z.enum(["consumer", "supplier", "admin"]);
export type Role = z.infer<typeof Role>;
/** Roles anyone may sign up for; `admin` is only ever created by the coordinator itself. */
export const SelfServiceRole = z.enum(["consumer", "supplier"]);

export const CreateAccountRequest = z.strictObject({
  roles: z.array(SelfServiceRole).min(1).max(2),
});
export type CreateAccountRequest = z.infer<typeof CreateAccountRequest>;

/** Answered once: the API key is never shown again (only its hash is stored). */
export const CreateAccountResponse = z.strictObject({
  accountId: idSchema(IdPrefix.account),
  roles: z.array(Role),
  apiKeyId: idSchema(IdPrefix.apiKey),
  apiKey: z.string(),
});
export type CreateAccountResponse = z.infer<typeof CreateAccountResponse>;

export const AccountView = z.strictObject({
  accountId: idSchema(IdPrefix.account),
  roles: z.array(Role),
  createdAt: z.iso.datetime(),
});
export type AccountView = z.infer<typeof AccountView>;

export const ApiKeyView = z.strictObject({
  id: idSchema(IdPrefix.apiKey),
  prefix: z.string(),
  createdAt: z.iso.datetime(),
  revokedAt: z.iso.datetime().nullable(),
});
export type ApiKeyView = z.infer<typeof ApiKeyView>;

export const CreateApiKeyResponse = z.strictObject({
  apiKeyId: idSchema(IdPrefix.apiKey),
  apiKey: z.string(),
});
export type CreateApiKeyResponse = z.infer<typeof CreateApiKeyResponse>;

/** `GET /v1/api-keys`: a page of the caller's keys, oldest first (the sign-up key leads). */
export const ApiKeyListQuery = z.strictObject({
  limit: PageLimit,
  /** The previous page's `nextCursor`: keys made after it. */
  cursor: idSchema(IdPrefix.apiKey).optional(),
});
export type ApiKeyListQuery = z.input<typeof ApiKeyListQuery>;

export const ApiKeyList = pageOf(ApiKeyView);
export type ApiKeyList = z.infer<typeof ApiKeyList>;

export const ApiKeyIdParams = z.strictObject({ id: idSchema(IdPrefix.apiKey) });
