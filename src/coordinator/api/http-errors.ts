import type { Duplex } from "node:stream";
import type { FastifyError, FastifyReply, FastifyRequest } from "fastify";
import { hasZodFastifySchemaValidationErrors } from "fastify-type-provider-zod";
import { ErrorCode, TandemError, assertNever } from "../../core/errors.ts";
import type { AmountIssueParams } from "../../protocol/amounts.ts";
import type { ErrorBody } from "../../protocol/errors.ts";
import { storeUnavailableReason } from "../store/store-unavailable.ts";

/** The one table from error codes to HTTP statuses. */
export function httpStatusOf(code: ErrorCode): number {
  switch (code) {
    case "VALIDATION_FAILED":
    case "BAD_SIGNATURE":
    case "UNKNOWN_REGION":
    case "INVALID_AMOUNT":
    case "UNKNOWN_CURRENCY":
    case "UNKNOWN_GPU_MODEL":
      return 400;
    case "INSUFFICIENT_FUNDS":
      return 402;
    case "UNAUTHENTICATED":
    case "ENROLLMENT_TOKEN_UNKNOWN":
    case "ENROLLMENT_TOKEN_USED":
    case "ENROLLMENT_TOKEN_EXPIRED":
      return 401;
    case "FORBIDDEN":
    case "SIGNUP_CLOSED":
    case "DEVICE_REVOKED":
      return 403;
    case "NOT_FOUND":
    case "RAIL_DISABLED":
      return 404;
    case "CONFLICT":
    case "INVALID_TRANSITION":
    case "IDEMPOTENCY_CONFLICT":
    case "NO_CAPACITY":
      return 409;
    case "PAYLOAD_TOO_LARGE":
      return 413;
    case "RATE_LIMITED":
      return 429;
    case "UNAVAILABLE":
    case "FENCED_OUT":
      return 503;
    case "INTERNAL":
      return 500;
    default:
      return assertNever(code);
  }
}

function body(
  code: string,
  message: string,
  details?: Readonly<Record<string, unknown>>,
): ErrorBody {
  return {
    error: details === undefined ? { code, message } : { code, message, details: { ...details } },
  };
}

/**
 * Turns anything thrown in a request into `{ error: { code, message, details } }`. Fastify's own
 * client errors (bad JSON, wrong content type, oversized body) keep their 4xx status; only a real
 * bug answers 500, and it is logged with its cause.
 */
export function errorHandler(
  error: FastifyError | TandemError | Error,
  request: FastifyRequest,
  reply: FastifyReply,
) {
  if (error instanceof TandemError && error.code !== ErrorCode.INTERNAL) {
    return reply
      .status(httpStatusOf(error.code))
      .send(body(error.code, error.message, error.details));
  }
  if (hasZodFastifySchemaValidationErrors(error)) {
    const amount = amountIssue(error.validation);
    if (amount !== undefined) {
      return reply.status(400).send(body(ErrorCode.INVALID_AMOUNT, amount.message, amount.details));
    }
    const issues = error.validation.map((v) => ({ path: v.instancePath, message: v.message }));
    const first = issues[0];
    const where = first === undefined || first.path === "" ? "" : ` at ${first.path}`;
    const message = `invalid ${error.validationContext ?? "request"}${where}: ${first?.message ?? "rejected"}`;
    return reply.status(400).send(body(ErrorCode.VALIDATION_FAILED, message, { issues }));
  }
  const status =
    !(error instanceof TandemError) && "statusCode" in error && typeof error.statusCode === "number"
      ? error.statusCode
      : 500;
  if (status === 413)
    return reply.status(413).send(body(ErrorCode.PAYLOAD_TOO_LARGE, "request body too large"));
  if (status === 429) return reply.status(429).send(body(ErrorCode.RATE_LIMITED, error.message));
  if (status >= 400 && status < 500) {
    return reply.status(status).send(body(ErrorCode.VALIDATION_FAILED, error.message));
  }
  const unavailable = storeUnavailableReason(error);
  if (unavailable !== undefined) {
    request.log.warn({ err: error }, "database unavailable");
    return reply
      .status(503)
      .header("retry-after", "1")
      .send(body(ErrorCode.UNAVAILABLE, `${unavailable}; try again shortly`));
  }
  // A broken invariant or a database error: its text (SQL, values, a driver's message) stays in
  // the server's log; the answer says only that it happened.
  request.log.error({ err: error }, "unhandled error");
  return reply.status(500).send(body(ErrorCode.INTERNAL, "internal error"));
}

/** The first refused amount among schema issues (protocol/amounts.ts), answered `INVALID_AMOUNT`. */
function amountIssue(
  validation: ReadonlyArray<{ instancePath: string; message?: string; params: unknown }>,
): { message: string; details: Record<string, unknown> } | undefined {
  for (const v of validation) {
    const params = (v.params as { params?: Partial<AmountIssueParams> } | undefined)?.params;
    if (typeof params?.amountProblem !== "string") continue;
    const field = v.instancePath.replace(/^\//, "").replaceAll("/", ".");
    return {
      message: `${field}: ${v.message ?? "not an acceptable amount"}`,
      details: { problem: params.amountProblem, field, max: params.max },
    };
  }
  return undefined;
}

export function notFoundHandler(request: FastifyRequest, reply: FastifyReply) {
  return reply
    .status(404)
    .send(body(ErrorCode.NOT_FOUND, `no route ${request.method} ${request.url.split("?")[0]}`));
}

/**
 * Requests Node's HTTP parser refuses before Fastify sees them (headers or URL over 16 KiB, a
 * malformed request line) still get the one error body, then the connection closes.
 */
export function clientErrorHandler(error: Error & { code?: string }, socket: Duplex): void {
  if (error.code === "ECONNRESET" || socket.destroyed) return;
  const [status, reason, payload] =
    error.code === "HPE_HEADER_OVERFLOW"
      ? [
          431,
          "Request Header Fields Too Large",
          body(ErrorCode.PAYLOAD_TOO_LARGE, "request headers or URL too large"),
        ]
      : error.code === "ERR_HTTP_REQUEST_TIMEOUT"
        ? [408, "Request Timeout", body(ErrorCode.VALIDATION_FAILED, "request timed out")]
        : [400, "Bad Request", body(ErrorCode.VALIDATION_FAILED, "malformed HTTP request")];
  const text = JSON.stringify(payload);
  if (socket.writable) {
    socket.write(
      `HTTP/1.1 ${status} ${reason}\r\nConnection: close\r\nContent-Type: application/json; charset=utf-8\r\n` +
        `Content-Length: ${Buffer.byteLength(text)}\r\n\r\n${text}`,
    );
  }
  socket.destroy(error);
}
