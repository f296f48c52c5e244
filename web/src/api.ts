import { TandemApiError, TandemClient } from "../../src/client/client.ts";

/** The explorer reads only the public API of the coordinator that serves it. */
export const client = new TandemClient({ baseUrl: window.location.origin, timeoutMs: 10_000 });

/** A sentence for a person, from whatever a request threw. */
export function describeError(error: unknown): string {
  if (error instanceof TandemApiError) {
    if (error.code === "NOT_FOUND") return error.message;
    if (error.code === "RATE_LIMITED") return "Too many requests right now; try again in a minute.";
    return `The coordinator refused the request: ${error.message} (${error.code}).`;
  }
  if (error instanceof DOMException && error.name === "TimeoutError")
    return "The coordinator took too long to answer.";
  if (error instanceof TypeError) return "Cannot reach the coordinator. Is it running?";
  return "The coordinator sent an answer this page does not understand.";
}

export function isNotFound(error: unknown): boolean {
  return error instanceof TandemApiError && error.code === "NOT_FOUND";
}
