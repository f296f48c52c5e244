// The client's HTTP in Node through `node:http` and `node:https`, for the CLI. Node's `fetch` is
// undici, which Node compiles on the first call, its HTTP parser WebAssembly: that was about a
// fifth of a short command such as `tandem nodes list` (bench/cli-start). node:http is Node's own
// (a C++ parser) and far smaller to load. Only Node code imports this file: the explorer's client
// keeps `fetch` (transport.ts).
import type { IncomingMessage } from "node:http";
import type { HttpAnswer, HttpTransport } from "./transport.ts";

/** No answer came within the request's time limit. */
export class HttpTimeoutError extends Error {
  readonly code = "TIMEOUT";
  constructor(url: URL, timeoutMs: number) {
    super(`no answer from ${url.origin} within ${timeoutMs} ms`);
    this.name = "HttpTimeoutError";
  }
}

/**
 * One exchange over node:http(s), the agent's kept-alive connections reused (`--all` pages).
 * A failure to connect rejects as `cannot reach <origin>` with the socket's error (its `code`,
 * e.g. ECONNREFUSED or a certificate refusal) as the cause, as `fetch` gives it.
 */
export const nodeHttpTransport: HttpTransport = async (request) => {
  const { request: send } =
    request.url.protocol === "https:" ? await import("node:https") : await import("node:http");
  return new Promise<HttpAnswer>((resolve, reject) => {
    const headers =
      request.body === undefined
        ? request.headers
        : { ...request.headers, "content-length": String(Buffer.byteLength(request.body)) };
    const outgoing = send(request.url, { method: request.method, headers });
    const timer = setTimeout(
      () => outgoing.destroy(new HttpTimeoutError(request.url, request.timeoutMs)),
      request.timeoutMs,
    );
    const fail = (error: Error) => {
      clearTimeout(timer);
      reject(
        error instanceof HttpTimeoutError
          ? error
          : new Error(`cannot reach ${request.url.origin}`, { cause: error }),
      );
    };
    outgoing.on("error", fail);
    outgoing.on("response", (incoming: IncomingMessage) => {
      const chunks: Buffer[] = [];
      incoming.on("data", (chunk: Buffer) => chunks.push(chunk));
      incoming.on("error", fail);
      incoming.on("end", () => {
        clearTimeout(timer);
        resolve({ status: incoming.statusCode ?? 0, text: Buffer.concat(chunks).toString("utf8") });
      });
    });
    outgoing.end(request.body);
  });
};
