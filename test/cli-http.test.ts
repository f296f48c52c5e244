// The CLI's HTTP (src/client/node-transport.ts): node:http(s) in place of `fetch` (issue 20 item
// 1). The same client answers alike over both transports against a real coordinator, errors
// included; a refused connection, a private CA's certificate and a server that never answers each
// end the request with an error that says so; `--all` pages reuse one kept-alive connection.
import assert from "node:assert/strict";
import { readFile, mkdtemp, rm } from "node:fs/promises";
import { createServer as createHttpServer, type Server } from "node:http";
import { createServer as createHttpsServer } from "node:https";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { TandemApiError, TandemClient } from "../src/client/client.ts";
import { HttpTimeoutError, nodeHttpTransport } from "../src/client/node-transport.ts";
import { fetchTransport } from "../src/client/transport.ts";
import { isCertificateRefusal } from "../src/worker/coordinator-trust.ts";
import { startTestCoordinator, type TestCoordinator } from "./support/coordinator.ts";
import { makeTestCertificates } from "./support/tls-certs.ts";

async function listening(server: Server): Promise<string> {
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  after(() => new Promise<void>((resolve) => server.close(() => resolve())));
  return `127.0.0.1:${(server.address() as AddressInfo).port}`;
}

describe("the client over node:http and over fetch, against a real coordinator", () => {
  let tc: TestCoordinator;
  before(async () => {
    tc = await startTestCoordinator({ database: "sqlite" });
  });
  after(() => tc.close());

  it("parses the same answers and raises the same API errors", async () => {
    const { apiKey } = await tc.signUp(["consumer"]);
    const over = (transport: typeof fetchTransport, jitless: boolean) =>
      new TandemClient({ baseUrl: tc.url, apiKey, transport, jitless });
    const node = over(nodeHttpTransport, true);
    const web = over(fetchTransport, false);
    assert.deepEqual(await node.me(), await web.me());
    assert.deepEqual(await node.listNodes({ limit: 5 }), await web.listNodes({ limit: 5 }));
    assert.deepEqual(await node.catalogGpus(), await web.catalogGpus());
    // A POST with a JSON body, and a refusal (typed 4xx) with its code.
    const search = { nodes: 1, gpuModel: "rtx-4090" };
    assert.deepEqual(await node.search(search), await web.search(search));
    const refusals = await Promise.all(
      [node, web].map((client) =>
        client.getCluster("clu_00000000000000000000000000").catch((error: unknown) => error),
      ),
    );
    for (const refusal of refusals) assert.ok(refusal instanceof TandemApiError);
    assert.deepEqual(
      refusals.map((r) => [(r as TandemApiError).status, (r as TandemApiError).code]),
      [
        [404, "NOT_FOUND"],
        [404, "NOT_FOUND"],
      ],
    );
  });
});

describe("node:http transport", () => {
  it("a refused connection says which coordinator, with the socket's error as the cause", async () => {
    const server = createHttpServer();
    const host = await listening(server);
    await new Promise<void>((resolve) => server.close(() => resolve()));
    const url = new URL(`http://${host}/v1/health`);
    await assert.rejects(
      nodeHttpTransport({ method: "GET", url, headers: {}, timeoutMs: 5_000 }),
      (error: Error) => {
        assert.equal(error.message, `cannot reach http://${host}`);
        assert.equal((error.cause as NodeJS.ErrnoException).code, "ECONNREFUSED");
        return true;
      },
    );
  });

  it("a server that never answers ends in a timeout error", async () => {
    const host = await listening(createHttpServer(() => undefined));
    const url = new URL(`http://${host}/v1/nodes`);
    await assert.rejects(
      nodeHttpTransport({ method: "GET", url, headers: {}, timeoutMs: 100 }),
      (error: Error) => error instanceof HttpTimeoutError && error.code === "TIMEOUT",
    );
  });

  it("a private CA's certificate is refused with a code the CLI explains", async () => {
    const dir = await mkdtemp(join(tmpdir(), "tandem-cli-http-"));
    after(() => rm(dir, { recursive: true, force: true }));
    const certs = await makeTestCertificates(dir, ["127.0.0.1"]);
    const server = createHttpsServer(
      { cert: await readFile(certs.certFile), key: await readFile(certs.keyFile) },
      (_req, res) => res.end("{}"),
    );
    const host = await listening(server);
    const url = new URL(`https://${host}/v1/health`);
    await assert.rejects(
      nodeHttpTransport({ method: "GET", url, headers: {}, timeoutMs: 5_000 }),
      (error: Error) =>
        error.message === `cannot reach https://${host}` && isCertificateRefusal(error.cause),
    );
  });

  it("sends the method, headers and body, and reuses one connection for the next request", async () => {
    const seen: Array<{ method?: string; type?: string; length?: string; body: string }> = [];
    const sockets = new Set<unknown>();
    const server = createHttpServer((req, res) => {
      sockets.add(req.socket);
      let body = "";
      req.on("data", (chunk: Buffer) => (body += chunk.toString()));
      req.on("end", () => {
        seen.push({
          ...(req.method === undefined ? {} : { method: req.method }),
          ...(req.headers["content-type"] === undefined
            ? {}
            : { type: req.headers["content-type"] }),
          ...(req.headers["content-length"] === undefined
            ? {}
            : { length: req.headers["content-length"] }),
          body,
        });
        res.writeHead(req.method === "PUT" ? 409 : 200).end("ünïcode");
      });
    });
    const host = await listening(server);
    const url = new URL(`http://${host}/v1/x`);
    const body = JSON.stringify({ name: "é" });
    const headers = { "content-type": "application/json" };
    assert.deepEqual(
      await nodeHttpTransport({ method: "PUT", url, headers, body, timeoutMs: 5_000 }),
      { status: 409, text: "ünïcode" },
    );
    assert.deepEqual(
      await nodeHttpTransport({ method: "GET", url, headers: {}, timeoutMs: 5_000 }),
      {
        status: 200,
        text: "ünïcode",
      },
    );
    assert.deepEqual(seen, [
      { method: "PUT", type: "application/json", length: String(Buffer.byteLength(body)), body },
      { method: "GET", body: "" },
    ]);
    assert.equal(sockets.size, 1, "the second request went over the first one's connection");
  });
});
