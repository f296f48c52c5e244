import { request as httpRequest } from "node:http";
import { request as httpsRequest } from "node:https";
import { explainConnectionError } from "./coordinator-trust.ts";

/** A coordinator's answer: its status and its body parsed as JSON (undefined when not JSON). */
export interface JsonAnswer {
  status: number;
  ok: boolean;
  body: unknown;
}

/** Most bytes of an answer read: a registration answer is a few hundred. */
const MAX_ANSWER_BYTES = 1024 * 1024;
/** A coordinator that has not answered within this is given up on, ms. */
const ANSWER_TIMEOUT_MS = 30_000;

/**
 * POSTs JSON to the coordinator with node:http(s), so a private CA (`ca`, the worker's
 * `--ca-file`) can be trusted for this request alone: Node 20's `fetch` takes no CA. Without
 * `ca`, Node's roots and `NODE_EXTRA_CA_CERTS` decide.
 */
export function postJson(
  url: URL,
  options: { headers: Record<string, string>; body: string; ca: string | undefined },
): Promise<JsonAnswer> {
  const request = url.protocol === "https:" ? httpsRequest : httpRequest;
  return new Promise((resolve, reject) => {
    const req = request(
      url,
      {
        method: "POST",
        headers: { ...options.headers, "content-length": Buffer.byteLength(options.body) },
        timeout: ANSWER_TIMEOUT_MS,
        ...(options.ca === undefined ? {} : { ca: options.ca }),
      },
      (res) => {
        const chunks: Buffer[] = [];
        let bytes = 0;
        res.on("data", (chunk: Buffer) => {
          bytes += chunk.length;
          if (bytes > MAX_ANSWER_BYTES)
            req.destroy(new Error("the coordinator's answer is too large"));
          else chunks.push(chunk);
        });
        res.on("end", () => {
          const status = res.statusCode ?? 0;
          let body: unknown;
          try {
            body = JSON.parse(Buffer.concat(chunks).toString("utf8"));
          } catch {
            body = undefined;
          }
          resolve({ status, ok: status >= 200 && status < 300, body });
        });
        res.on("error", reject);
      },
    );
    req.on("timeout", () =>
      req.destroy(new Error(`no answer from the coordinator within ${ANSWER_TIMEOUT_MS} ms`)),
    );
    req.on("error", (error) => reject(explainConnectionError(error, url.href)));
    req.end(options.body);
  });
}
