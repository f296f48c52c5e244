/** One HTTP request as the client makes it: a JSON body (already serialized) or none. */
export interface HttpRequest {
  method: "GET" | "POST" | "PUT" | "DELETE";
  url: URL;
  headers: Record<string, string>;
  body?: string;
  /** The whole exchange's limit, ms: connecting, sending and reading the answer. */
  timeoutMs: number;
}

/** The status and the body of an answer, whatever its status. */
export interface HttpAnswer {
  status: number;
  text: string;
}

/**
 * How the client reaches the coordinator. Rejects only when no answer came (no connection, a
 * refused certificate, the time limit): an error status is an answer.
 */
export type HttpTransport = (request: HttpRequest) => Promise<HttpAnswer>;

/** The platform's `fetch`: what the explorer uses in the browser, and the default. */
export const fetchTransport: HttpTransport = async (request) => {
  const response = await fetch(request.url, {
    method: request.method,
    headers: request.headers,
    ...(request.body === undefined ? {} : { body: request.body }),
    signal: AbortSignal.timeout(request.timeoutMs),
  });
  return { status: response.status, text: await response.text() };
};
