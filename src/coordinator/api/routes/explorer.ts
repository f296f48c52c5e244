import { access } from "node:fs/promises";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import fastifyStatic from "@fastify/static";
import type { FastifyReply } from "fastify";
import { z } from "zod";
import { notFoundHandler } from "../http-errors.ts";
import type { ZodApp } from "../server.ts";

/** Where `npm run build:web` writes the explorer (web/dist at the repository root). */
export const EXPLORER_DIST_DIR = fileURLToPath(new URL("../../../../web/dist/", import.meta.url));

export interface ExplorerOptions {
  /** Directory of the built explorer (default {@link EXPLORER_DIST_DIR}). */
  distDir?: string;
}

/** The explorer talks to this origin only; charts and React set styles through the CSSOM. */
const CONTENT_SECURITY_POLICY = [
  "default-src 'self'",
  "script-src 'self'",
  "style-src 'self'",
  "img-src 'self' data:",
  "connect-src 'self'",
  "object-src 'none'",
  "base-uri 'self'",
  "form-action 'self'",
  "frame-ancestors 'none'",
].join("; ");

const NOT_BUILT_PAGE = `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Tandem explorer not built</title></head>
<body style="font-family: system-ui, sans-serif; max-width: 40rem; margin: 3rem auto; padding: 0 1rem">
<h1>The explorer is not built</h1>
<p>This coordinator is running, and its API answers at <a href="/v1/health">/v1/health</a>, but the
explorer's files are missing. Build them from the repository root, then reload this page:</p>
<pre>npm run build:web</pre>
<p>(<code>npm start</code> builds them by itself when they are missing or out of date.)</p>
</body></html>
`;

/**
 * Serves the explorer's built assets at `/`. Paths whose last segment has an extension are files
 * (`/assets/*` are content-hashed and cached for good); any other path is a page of the app and
 * gets index.html, so deep links such as `/nodes/node_…?status=offline` load. `/v1/*` and
 * `/metrics` never fall through to the app: an unknown API path still answers the JSON 404.
 * A missing build answers a plain page saying how to build it.
 */
export async function explorerRoutes(app: ZodApp, options: ExplorerOptions = {}): Promise<void> {
  const distDir = options.distDir ?? EXPLORER_DIST_DIR;
  await app.register(fastifyStatic, { serve: false, dotfiles: "ignore" });

  const sendIndex = async (reply: FastifyReply) => {
    reply
      .header("content-security-policy", CONTENT_SECURITY_POLICY)
      .header("x-content-type-options", "nosniff")
      .header("referrer-policy", "no-referrer");
    const built = await access(join(distDir, "index.html")).then(
      () => true,
      () => false,
    );
    if (!built) return reply.status(503).type("text/html; charset=utf-8").send(NOT_BUILT_PAGE);
    return reply
      .header("cache-control", "no-cache")
      .sendFile("index.html", distDir, { cacheControl: false });
  };

  // The app's pages read their own query string (deep-linked filters): the server passes it on.
  const anyQuery = z.record(z.string(), z.unknown());
  const config = { rateLimit: false as const };
  app.get("/", { schema: { hide: true, querystring: anyQuery }, config }, (_request, reply) =>
    sendIndex(reply),
  );
  const routeOptions = {
    schema: { hide: true, querystring: anyQuery, params: z.strictObject({ "*": z.string() }) },
    config,
  };
  app.get("/*", routeOptions, (request, reply) => {
    const path = request.params["*"];
    if (isServerPath(path)) return notFoundHandler(request, reply);
    const last = path.split("/").at(-1) ?? "";
    if (!last.includes(".")) return sendIndex(reply);
    const immutable = path.startsWith("assets/");
    return reply
      .header("x-content-type-options", "nosniff")
      .sendFile(path, distDir, immutable ? { immutable: true, maxAge: "365d" } : { maxAge: 0 });
  });
}

function isServerPath(path: string): boolean {
  return ["v1", "metrics"].some((prefix) => path === prefix || path.startsWith(`${prefix}/`));
}
