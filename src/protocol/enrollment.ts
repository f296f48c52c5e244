import { z } from "zod";
import { IdPrefix, idSchema } from "./ids.ts";
import { PageLimit, pageOf } from "./paging.ts";

/** What every enrollment token starts with (an API key starts with `tdm_`). */
export const ENROLLMENT_TOKEN_PREFIX = "tdme_";

/** A single-use enrollment token: the prefix and 32 random bytes, base64url. */
export const EnrollmentToken = z
  .string()
  .regex(/^tdme_[A-Za-z0-9_-]{43}$/, "expected an enrollment token (tdme_…)");

/** How long a token may live, seconds: default 1 h, at most 24 h. */
export const ENROLLMENT_TTL_SECONDS = { default: 3600, min: 60, max: 86_400 } as const;

export const CreateEnrollmentTokenRequest = z.strictObject({
  /** Seconds until the token expires (default 3600, 60 to 86400). */
  ttlSeconds: z
    .number()
    .int()
    .min(ENROLLMENT_TTL_SECONDS.min)
    .max(ENROLLMENT_TTL_SECONDS.max)
    .optional(),
});
export type CreateEnrollmentTokenRequest = z.infer<typeof CreateEnrollmentTokenRequest>;

/** Answered once: the token is never shown again (only its hash is stored). */
export const EnrollmentTokenResponse = z.strictObject({
  tokenId: idSchema(IdPrefix.enrollmentToken),
  token: EnrollmentToken,
  expiresAt: z.iso.datetime(),
});
export type EnrollmentTokenResponse = z.infer<typeof EnrollmentTokenResponse>;

export const EnrollmentTokenView = z.strictObject({
  tokenId: idSchema(IdPrefix.enrollmentToken),
  createdAt: z.iso.datetime(),
  expiresAt: z.iso.datetime(),
  usedAt: z.iso.datetime().nullable(),
  /** The device the token enrolled, once used. */
  deviceId: idSchema(IdPrefix.device).nullable(),
});
export type EnrollmentTokenView = z.infer<typeof EnrollmentTokenView>;

/** `GET /v1/enrollment-tokens`: a page of the caller's tokens, newest first. */
export const EnrollmentTokenListQuery = z.strictObject({
  limit: PageLimit,
  /** The previous page's `nextCursor`: tokens made before it. */
  cursor: idSchema(IdPrefix.enrollmentToken).optional(),
});
export type EnrollmentTokenListQuery = z.input<typeof EnrollmentTokenListQuery>;

export const EnrollmentTokenList = pageOf(EnrollmentTokenView);
export type EnrollmentTokenList = z.infer<typeof EnrollmentTokenList>;
