/**
 * Stable error codes, shared by every layer. The API edge maps each to an HTTP status in one table
 * (src/coordinator/api/http-errors.ts); the domain never speaks HTTP.
 */
export const ErrorCode = {
  VALIDATION_FAILED: "VALIDATION_FAILED",
  UNAUTHENTICATED: "UNAUTHENTICATED",
  FORBIDDEN: "FORBIDDEN",
  NOT_FOUND: "NOT_FOUND",
  CONFLICT: "CONFLICT",
  PAYLOAD_TOO_LARGE: "PAYLOAD_TOO_LARGE",
  RATE_LIMITED: "RATE_LIMITED",
  SIGNUP_CLOSED: "SIGNUP_CLOSED",
  DEVICE_REVOKED: "DEVICE_REVOKED",
  ENROLLMENT_TOKEN_UNKNOWN: "ENROLLMENT_TOKEN_UNKNOWN",
  ENROLLMENT_TOKEN_USED: "ENROLLMENT_TOKEN_USED",
  ENROLLMENT_TOKEN_EXPIRED: "ENROLLMENT_TOKEN_EXPIRED",
  BAD_SIGNATURE: "BAD_SIGNATURE",
  UNKNOWN_REGION: "UNKNOWN_REGION",
  INVALID_TRANSITION: "INVALID_TRANSITION",
  INVALID_AMOUNT: "INVALID_AMOUNT",
  UNKNOWN_CURRENCY: "UNKNOWN_CURRENCY",
  INSUFFICIENT_FUNDS: "INSUFFICIENT_FUNDS",
  IDEMPOTENCY_CONFLICT: "IDEMPOTENCY_CONFLICT",
  NO_CAPACITY: "NO_CAPACITY",
  UNKNOWN_GPU_MODEL: "UNKNOWN_GPU_MODEL",
  /** The database is locked, full or unreachable for now: retry later (503). */
  UNAVAILABLE: "UNAVAILABLE",
  /** This coordinator replica no longer leads the singleton loops: another one does (503). */
  FENCED_OUT: "FENCED_OUT",
  /** This coordinator runs no on-chain rail (Solana off): no deposit address to give (404). */
  RAIL_DISABLED: "RAIL_DISABLED",
  INTERNAL: "INTERNAL",
} as const;
export type ErrorCode = (typeof ErrorCode)[keyof typeof ErrorCode];

/** A broken invariant or a refused request, with a stable `code` and optional structured details. */
export class TandemError extends Error {
  readonly code: ErrorCode;
  readonly details: Readonly<Record<string, unknown>> | undefined;

  constructor(
    code: ErrorCode,
    message: string,
    options: { details?: Record<string, unknown>; cause?: unknown } = {},
  ) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = "TandemError";
    this.code = code;
    this.details = options.details;
  }
}

/** Exhaustiveness guard for `switch` over closed unions. */
export function assertNever(value: never): never {
  throw new TandemError(ErrorCode.INTERNAL, `unexpected value: ${String(value)}`);
}
