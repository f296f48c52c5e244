/**
 * The coordinator's HTTP API over real sockets, on SQLite and on PostgreSQL: every route's
 * authentication and role checks, the error body and its exact codes, limits, sign-up policy, and
 * the system routes (health, metrics, OpenAPI).
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { PROTOCOL_VERSION } from "../src/protocol/worker-messages.ts";
import {
  assertError,
  dumpDatabase,
  forEachDatabase,
  httpRequest,
  listRoutes,
  type TestCoordinator,
} from "./support/coordinator.ts";
import { fixtureHardware, newDeviceKey, signedRegistration } from "./support/devices.ts";
import { registerDevice } from "./support/workers.ts";

const UNKNOWN_NODE = "node_00000000000000000000000000";
const UNKNOWN_DEVICE = "dev_00000000000000000000000000";
const UNKNOWN_KEY = "key_00000000000000000000000000";

/** A network with one account of each role and one registered device. */
async function network(tc: TestCoordinator) {
  const consumer = await tc.signUp(["consumer"]);
  const supplier = await tc.signUp(["supplier"]);
  const registered = await registerDevice(tc, supplier.apiKey);
  return { consumer, supplier, admin: tc.adminKey, ...registered };
}

forEachDatabase("HTTP API", (db) => {
  test("GET /v1/health answers the version, protocol and database", async (t) => {
    const tc = await db.startCoordinator();
    t.after(() => tc.close());
    const { replica, ...health } = await tc.client().health();
    assert.deepEqual(health, {
      status: "ok",
      version: "0.1.0",
      protocolVersion: PROTOCOL_VERSION,
      database: db.kind,
      connectedWorkers: 0,
    });
    // One coordinator leads its singleton loops (test/replicas.test.ts: many replicas).
    assert.equal(replica.leader, true);
  });

  test("GET /metrics is Prometheus text counting requests by route and status", async (t) => {
    const tc = await db.startCoordinator();
    t.after(() => tc.close());
    await tc.client().health();
    await httpRequest(tc.url, "GET", `/v1/nodes/${UNKNOWN_NODE}`);
    const response = await httpRequest(tc.url, "GET", "/metrics");
    assert.equal(response.status, 200);
    assert.match(response.headers.get("content-type") ?? "", /^text\/plain; version=0\.0\.4/);
    const sample = /^[a-zA-Z_:][a-zA-Z0-9_:]*(\{[^}]*\})? (-?[0-9.]+(e[+-]?[0-9]+)?|NaN|[+-]Inf)$/;
    for (const line of response.text.split("\n")) {
      if (line === "" || line.startsWith("# HELP ") || line.startsWith("# TYPE ")) continue;
      assert.match(line, sample);
    }
    assert.match(response.text, /^# TYPE tandem_http_requests_total counter$/m);
    assert.match(response.text, /^tandem_connected_workers 0$/m);
    assert.match(
      response.text,
      /^tandem_http_requests_total\{method="GET",route="\/v1\/health",status="200"\} 1$/m,
    );
    assert.match(
      response.text,
      /^tandem_http_requests_total\{method="GET",route="\/v1\/nodes\/:id",status="404"\} 1$/m,
    );
  });

  test("GET /v1/openapi.json documents every API route, and only those", async (t) => {
    const tc = await db.startCoordinator();
    t.after(() => tc.close());
    const response = await httpRequest(tc.url, "GET", "/v1/openapi.json");
    assert.equal(response.status, 200);
    const doc = response.json as {
      openapi: string;
      paths: Record<string, Record<string, unknown>>;
    };
    assert.match(doc.openapi, /^3\./);
    const documented = Object.entries(doc.paths)
      .flatMap(([path, ops]) => Object.keys(ops).map((m) => `${m.toUpperCase()} ${path}`))
      .sort();
    // Not API routes: the document itself, the worker WebSocket, metrics, the explorer's pages.
    const undocumented = new Set([
      "/v1/openapi.json",
      "/v1/workers/connect",
      "/metrics",
      "/",
      "/*",
    ]);
    const served = listRoutes(tc.coordinator.app)
      .filter((r) => r.method !== "HEAD" && !undocumented.has(r.url))
      .map((r) => `${r.method} ${r.url.replace(/:(\w+)/g, "{$1}")}`)
      .sort();
    assert.deepEqual(documented, served);
    for (const expected of [
      "GET /v1/health",
      "POST /v1/accounts",
      "GET /v1/accounts/me",
      "POST /v1/api-keys",
      "GET /v1/api-keys",
      "POST /v1/api-keys/{id}/revoke",
      "POST /v1/devices",
      "POST /v1/devices/{id}/revoke",
      "GET /v1/nodes",
      "GET /v1/nodes/{id}",
      "GET /v1/nodes/{id}/history",
      "GET /v1/network/stats",
    ]) {
      assert.ok(documented.includes(expected), `${expected} is not documented`);
    }
  });

  test("routes that need a key answer 401 without one, with a bad one, or a revoked one", async (t) => {
    const tc = await db.startCoordinator();
    t.after(() => tc.close());
    const n = await network(tc);
    const revoked = await tc.signUp(["consumer", "supplier"]);
    const keys = await revoked.client.listApiKeys();
    await revoked.client.revokeApiKey(keys.items[0]!.id);

    const protectedRoutes: Array<[string, string, unknown]> = [
      ["GET", "/v1/accounts/me", undefined],
      ["POST", "/v1/api-keys", undefined],
      ["GET", "/v1/api-keys", undefined],
      ["POST", `/v1/api-keys/${UNKNOWN_KEY}/revoke`, undefined],
      ["POST", "/v1/devices", n.body],
      ["POST", `/v1/devices/${n.deviceId}/revoke`, { reason: "test" }],
    ];
    const badHeaders: Array<Record<string, string>> = [
      {},
      { authorization: "Bearer tdm_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA" },
      { authorization: `Bearer ${revoked.apiKey}` },
      { authorization: `Basic ${Buffer.from("admin:admin").toString("base64")}` },
      { authorization: "Bearer" },
      { authorization: `Bearer ${n.supplier.apiKey} extra` },
      { authorization: `bearer ${n.supplier.apiKey}x` },
    ];
    const before = await dumpDatabase(tc.coordinator.store);
    for (const [method, path, body] of protectedRoutes) {
      for (const headers of badHeaders) {
        const response = await httpRequest(tc.url, method, path, { body, headers });
        assertError(
          response,
          401,
          "UNAUTHENTICATED",
          `${method} ${path} ${JSON.stringify(headers)}`,
        );
      }
    }
    // A key that is present but wrong is refused on public routes too.
    for (const path of ["/v1/nodes", `/v1/nodes/${n.nodeId}`, "/v1/network/stats", "/v1/health"]) {
      const response = await httpRequest(tc.url, "GET", path, { apiKey: revoked.apiKey });
      assertError(response, 401, "UNAUTHENTICATED", path);
    }
    assert.deepEqual(await dumpDatabase(tc.coordinator.store), before);
  });

  test("a caller without the route's role gets 403 FORBIDDEN; an admin may do anything", async (t) => {
    const tc = await db.startCoordinator();
    t.after(() => tc.close());
    const n = await network(tc);
    const before = await dumpDatabase(tc.coordinator.store);

    const asConsumer = await httpRequest(tc.url, "POST", "/v1/devices", {
      apiKey: n.consumer.apiKey,
      body: signedRegistration(newDeviceKey(), {
        region: "eu-west",
        zone: "eu-west-a",
        hardware: await fixtureHardware("none"),
      }),
    });
    const error = assertError(asConsumer, 403, "FORBIDDEN", "consumer registers a device");
    assert.deepEqual(error.details, { required: ["supplier"], held: ["consumer"] });
    for (const apiKey of [n.consumer.apiKey, n.supplier.apiKey]) {
      const revoke = await httpRequest(tc.url, "POST", `/v1/devices/${n.deviceId}/revoke`, {
        apiKey,
        body: {},
      });
      assertError(revoke, 403, "FORBIDDEN", "non-admin revokes a device");
    }
    assert.deepEqual(await dumpDatabase(tc.coordinator.store), before);

    // The admin holds every role.
    const adminDevice = await registerDevice(tc, n.admin);
    assert.match(adminDevice.nodeId, /^node_/);
    assert.deepEqual((await tc.client(n.admin).me()).roles, ["admin"]);
  });

  test("unknown nodes, devices, keys and routes are 404 NOT_FOUND", async (t) => {
    const tc = await db.startCoordinator();
    t.after(() => tc.close());
    const n = await network(tc);
    const other = await tc.signUp(["consumer"]);
    const otherKeys = await other.client.listApiKeys();
    const cases: Array<[string, string, string | undefined, unknown]> = [
      ["GET", `/v1/nodes/${UNKNOWN_NODE}`, undefined, undefined],
      ["GET", `/v1/nodes/${UNKNOWN_NODE}/history`, undefined, undefined],
      ["POST", `/v1/devices/${UNKNOWN_DEVICE}/revoke`, n.admin, {}],
      ["POST", `/v1/api-keys/${UNKNOWN_KEY}/revoke`, n.consumer.apiKey, undefined],
      // Another account's key is not yours to revoke, nor to learn about.
      ["POST", `/v1/api-keys/${otherKeys.items[0]!.id}/revoke`, n.consumer.apiKey, undefined],
      ["GET", "/v1/nope", undefined, undefined],
      ["GET", "/v1", undefined, undefined],
      ["DELETE", `/v1/nodes/${n.nodeId}`, n.admin, undefined],
      ["PUT", "/v1/accounts", undefined, { roles: ["consumer"] }],
      ["GET", "/metrics/x", undefined, undefined],
    ];
    const before = await dumpDatabase(tc.coordinator.store);
    for (const [method, path, apiKey, body] of cases) {
      const response = await httpRequest(tc.url, method, path, {
        ...(apiKey === undefined ? {} : { apiKey }),
        body,
      });
      assertError(response, 404, "NOT_FOUND", `${method} ${path}`);
    }
    assert.deepEqual(await dumpDatabase(tc.coordinator.store), before);
  });

  test("a device key of another account is 409 CONFLICT; a revoked device 403 DEVICE_REVOKED", async (t) => {
    const tc = await db.startCoordinator();
    t.after(() => tc.close());
    const n = await network(tc);
    const thief = await tc.signUp(["supplier"]);
    const before = await dumpDatabase(tc.coordinator.store);
    const stolen = await httpRequest(tc.url, "POST", "/v1/devices", {
      apiKey: thief.apiKey,
      body: n.body,
    });
    assertError(stolen, 409, "CONFLICT");
    assert.deepEqual(await dumpDatabase(tc.coordinator.store), before);

    const again = await httpRequest(tc.url, "POST", "/v1/devices", {
      apiKey: n.supplier.apiKey,
      body: n.body,
    });
    assert.equal(again.status, 200);
    assert.deepEqual(again.json, { deviceId: n.deviceId, nodeId: n.nodeId, created: false });

    const revoked = await tc.client(n.admin).revokeDevice(n.deviceId, "stolen laptop");
    assert.equal(revoked.status, "revoked");
    const after = await httpRequest(tc.url, "POST", "/v1/devices", {
      apiKey: n.supplier.apiKey,
      body: n.body,
    });
    assertError(after, 403, "DEVICE_REVOKED");
    // Revoking twice is idempotent: same answer, no second history row.
    assert.deepEqual(await tc.client(n.admin).revokeDevice(n.deviceId), revoked);
    const history = await tc.client().nodeHistory(n.nodeId);
    assert.deepEqual(
      history.items.map((h) => [h.action, h.to, h.detail["reason"]]),
      [
        ["registered", "offline", undefined],
        ["status", "revoked", "stolen laptop"],
      ],
    );
  });

  test("bad input is 400 with the exact code and the issues", async (t) => {
    const tc = await db.startCoordinator();
    t.after(() => tc.close());
    const n = await network(tc);
    const hardware = await fixtureHardware("rtx3060ti");
    const key = newDeviceKey();
    const cases: Array<[string, string, string | undefined, unknown, string]> = [
      ["POST", "/v1/accounts", undefined, { roles: ["consumer"], extra: 1 }, "VALIDATION_FAILED"],
      ["POST", "/v1/accounts", undefined, { roles: ["admin"] }, "VALIDATION_FAILED"],
      ["POST", "/v1/accounts", undefined, { roles: [] }, "VALIDATION_FAILED"],
      ["POST", "/v1/accounts", undefined, { roles: "consumer" }, "VALIDATION_FAILED"],
      ["POST", "/v1/accounts", undefined, "{not json", "VALIDATION_FAILED"],
      ["POST", "/v1/accounts", undefined, "[]", "VALIDATION_FAILED"],
      ["POST", "/v1/api-keys", n.consumer.apiKey, { name: "x" }, "VALIDATION_FAILED"],
      [
        "POST",
        `/v1/api-keys/${UNKNOWN_KEY}/revoke`,
        n.consumer.apiKey,
        { x: 1 },
        "VALIDATION_FAILED",
      ],
      [
        "POST",
        `/v1/devices/${n.deviceId}/revoke`,
        n.admin,
        { reason: "x", force: true },
        "VALIDATION_FAILED",
      ],
      ["POST", "/v1/devices/dev_x/revoke", n.admin, {}, "VALIDATION_FAILED"],
      ["GET", "/v1/nodes/not-a-node", undefined, undefined, "VALIDATION_FAILED"],
      ["GET", `/v1/nodes/${n.deviceId}`, undefined, undefined, "VALIDATION_FAILED"],
      ["GET", "/v1/nodes?limit=0", undefined, undefined, "VALIDATION_FAILED"],
      ["GET", "/v1/nodes?limit=501", undefined, undefined, "VALIDATION_FAILED"],
      ["GET", "/v1/nodes?status=sleeping", undefined, undefined, "VALIDATION_FAILED"],
      ["GET", "/v1/nodes?minUptime=1.5", undefined, undefined, "VALIDATION_FAILED"],
      ["GET", "/v1/nodes?minVramMiB=lots", undefined, undefined, "VALIDATION_FAILED"],
      ["GET", "/v1/nodes?region=eu-west&region=us-east", undefined, undefined, "VALIDATION_FAILED"],
      ["GET", "/v1/nodes?gpuModel=RTX%204090", undefined, undefined, "VALIDATION_FAILED"],
      ["GET", "/v1/nodes?sort=id", undefined, undefined, "VALIDATION_FAILED"],
      ["GET", "/v1/nodes?cursor=bm9kZV8h", undefined, undefined, "VALIDATION_FAILED"],
      [
        "GET",
        `/v1/nodes/${n.nodeId}/history?cursor=YWJj`,
        undefined,
        undefined,
        "VALIDATION_FAILED",
      ],
      ["GET", `/v1/nodes/${n.nodeId}/history?limit=-1`, undefined, undefined, "VALIDATION_FAILED"],
      ["GET", "/v1/health?verbose=1", undefined, undefined, "VALIDATION_FAILED"],
      ["GET", "/v1/network/stats?x=1", undefined, undefined, "VALIDATION_FAILED"],
      ["GET", "/v1/nodes/%E0%A4%A", undefined, undefined, "VALIDATION_FAILED"],
      [
        "POST",
        "/v1/devices",
        n.supplier.apiKey,
        signedRegistration(key, { region: "mars", zone: "mars-a", hardware }),
        "UNKNOWN_REGION",
      ],
      [
        "POST",
        "/v1/devices",
        n.supplier.apiKey,
        signedRegistration(key, { region: "eu-west", zone: "us-east-a", hardware }),
        "UNKNOWN_REGION",
      ],
      [
        "POST",
        "/v1/devices",
        n.supplier.apiKey,
        signedRegistration(
          key,
          { region: "eu-west", zone: "eu-west-a", hardware },
          newDeviceKey().privateKey,
        ),
        "BAD_SIGNATURE",
      ],
      [
        "POST",
        "/v1/devices",
        n.supplier.apiKey,
        {
          ...signedRegistration(key, { region: "eu-west", zone: "eu-west-a", hardware }),
          extra: 1,
        },
        "VALIDATION_FAILED",
      ],
      [
        "POST",
        "/v1/devices",
        n.supplier.apiKey,
        {
          ...signedRegistration(key, { region: "eu-west", zone: "eu-west-a", hardware }),
          hardware: { ...hardware, tee: true },
        },
        "VALIDATION_FAILED",
      ],
    ];
    const before = await dumpDatabase(tc.coordinator.store);
    for (const [method, path, apiKey, body, code] of cases) {
      const response = await httpRequest(tc.url, method, path, {
        ...(apiKey === undefined ? {} : { apiKey }),
        body,
      });
      const error = assertError(
        response,
        400,
        code,
        `${method} ${path} ${JSON.stringify(body)?.slice(0, 80)}`,
      );
      if (code === "VALIDATION_FAILED" && typeof body === "object" && error.details !== undefined) {
        assert.ok(Array.isArray(error.details["issues"]), `${path}: issues listed`);
      }
    }
    const wrongType = await httpRequest(tc.url, "POST", "/v1/accounts", {
      body: "roles=consumer",
      headers: { "content-type": "application/x-www-form-urlencoded" },
    });
    assertError(wrongType, 415, "VALIDATION_FAILED");
    const longParam = await httpRequest(tc.url, "GET", `/v1/nodes/${"n".repeat(2000)}`);
    assertError(longParam, 404, "NOT_FOUND");
    assert.deepEqual(await dumpDatabase(tc.coordinator.store), before);
  });

  test("a body over the limit is 413 PAYLOAD_TOO_LARGE; a URL over 16 KiB 431", async (t) => {
    const tc = await db.startCoordinator({ config: { bodyLimitBytes: 4096 } });
    t.after(() => tc.close());
    const n = await network(tc);
    const before = await dumpDatabase(tc.coordinator.store);
    const big = { roles: ["consumer"], padding: "x".repeat(5000) };
    assertError(
      await httpRequest(tc.url, "POST", "/v1/accounts", { body: big }),
      413,
      "PAYLOAD_TOO_LARGE",
    );
    const bigDevice = {
      ...n.body,
      hardware: { ...n.body.hardware, cpu: { ...n.body.hardware.cpu, model: "m".repeat(5000) } },
    };
    assertError(
      await httpRequest(tc.url, "POST", "/v1/devices", {
        apiKey: n.supplier.apiKey,
        body: bigDevice,
      }),
      413,
      "PAYLOAD_TOO_LARGE",
    );
    assertError(
      await httpRequest(tc.url, "GET", `/v1/nodes?gpuModel=${"a".repeat(20_000)}`),
      431,
      "PAYLOAD_TOO_LARGE",
    );
    assert.deepEqual(await dumpDatabase(tc.coordinator.store), before);
    // Right under the limit is fine.
    const fits = await httpRequest(tc.url, "POST", "/v1/accounts", {
      body: JSON.stringify({ roles: ["consumer"] }).padEnd(4000, " "),
    });
    assert.equal(fits.status, 201);
  });

  test("past the per-minute budget a caller gets 429 RATE_LIMITED, per key and per address", async (t) => {
    const tc = await db.startCoordinator({ config: { rateLimitPerMinute: 3 } });
    t.after(() => tc.close());
    const consumer = await tc.signUp(["consumer"]);
    for (let i = 0; i < 3; i++) {
      assert.equal((await httpRequest(tc.url, "GET", "/v1/health")).status, 200);
    }
    const limited = assertError(await httpRequest(tc.url, "GET", "/v1/nodes"), 429, "RATE_LIMITED");
    assert.equal(typeof limited.details?.["retryAfterMs"], "number");
    // A key has a budget of its own.
    for (let i = 0; i < 3; i++) {
      const me = await httpRequest(tc.url, "GET", "/v1/accounts/me", { apiKey: consumer.apiKey });
      assert.equal(me.status, 200);
    }
    assertError(
      await httpRequest(tc.url, "GET", "/v1/accounts/me", { apiKey: consumer.apiKey }),
      429,
      "RATE_LIMITED",
    );
    assertError(
      await httpRequest(tc.url, "POST", "/v1/accounts", { body: { roles: ["consumer"] } }),
      429,
      "RATE_LIMITED",
    );
  });

  test("open sign-up answers a working key once; closed sign-up is 403 SIGNUP_CLOSED except for admins", async (t) => {
    const open = await db.startCoordinator();
    t.after(() => open.close());
    const created = await httpRequest(open.url, "POST", "/v1/accounts", {
      body: { roles: ["supplier", "consumer"] },
    });
    assert.equal(created.status, 201);
    const account = created.json as {
      accountId: string;
      apiKey: string;
      apiKeyId: string;
      roles: string[];
    };
    assert.deepEqual(account.roles, ["consumer", "supplier"]);
    assert.deepEqual(await open.client(account.apiKey).me(), {
      accountId: account.accountId,
      roles: ["consumer", "supplier"],
      createdAt: (await open.client(account.apiKey).me()).createdAt,
    });
    const listed = await open.client(account.apiKey).listApiKeys();
    assert.deepEqual(
      listed.items.map((k) => k.id),
      [account.apiKeyId],
    );
    assert.ok(
      !JSON.stringify(listed).includes(account.apiKey.slice(12)),
      "the key is never shown again",
    );

    const closed = await db.startCoordinator({ config: { openSignup: false } });
    t.after(() => closed.close());
    const member = await closed.signUp(["consumer"]);
    const before = await dumpDatabase(closed.coordinator.store);
    for (const apiKey of [undefined, member.apiKey]) {
      const refused = await httpRequest(closed.url, "POST", "/v1/accounts", {
        ...(apiKey === undefined ? {} : { apiKey }),
        body: { roles: ["consumer"] },
      });
      assertError(refused, 403, "SIGNUP_CLOSED");
    }
    assert.deepEqual(await dumpDatabase(closed.coordinator.store), before);
    const byAdmin = await httpRequest(closed.url, "POST", "/v1/accounts", {
      apiKey: closed.adminKey,
      body: { roles: ["supplier"] },
    });
    assert.equal(byAdmin.status, 201);
  });

  test("API keys: create, list, revoke; a revoked key is refused at once", async (t) => {
    const tc = await db.startCoordinator();
    t.after(() => tc.close());
    const account = await tc.signUp(["consumer"]);
    const second = await account.client.createApiKey();
    const secondClient = tc.client(second.apiKey);
    assert.equal((await secondClient.me()).accountId, account.accountId);

    const { items } = await account.client.listApiKeys();
    assert.equal(items.length, 2);
    const first = items.find((k) => k.id !== second.apiKeyId)!;
    const revoked = await httpRequest(tc.url, "POST", `/v1/api-keys/${first.id}/revoke`, {
      apiKey: second.apiKey,
    });
    assert.equal(revoked.status, 200);
    assert.deepEqual(Object.keys(revoked.json as object).sort(), ["id", "revokedAt"]);
    assertError(
      await httpRequest(tc.url, "GET", "/v1/accounts/me", { apiKey: account.apiKey }),
      401,
      "UNAUTHENTICATED",
    );
    const after = await secondClient.listApiKeys();
    assert.equal(
      after.items.find((k) => k.id === first.id)?.revokedAt,
      (revoked.json as { revokedAt: string }).revokedAt,
    );
    assert.equal(after.items.find((k) => k.id === second.apiKeyId)?.revokedAt, null);
  });

  test("public reads: node list with filters, one node, its history, network stats", async (t) => {
    const tc = await db.startCoordinator();
    t.after(() => tc.close());
    const n = await network(tc);
    const anonymous = tc.client();
    const list = await anonymous.listNodes({ gpuModel: "rtx-4090", region: "eu-west", limit: 10 });
    assert.deepEqual(
      list.items.map((i) => i.id),
      [n.nodeId],
    );
    assert.equal(list.nextCursor, null);
    const item = list.items[0]!;
    assert.equal(item.status, "offline");
    assert.deepEqual(
      item.gpus.map((g) => g.model),
      ["rtx-4090"],
    );
    assert.deepEqual(item.uptime, { "24h": 0, "7d": 0, "30d": 0 });
    assert.deepEqual((await anonymous.listNodes({ zone: "eu-west-b" })).items, []);
    assert.deepEqual((await anonymous.listNodes({ status: "available" })).items, []);
    assert.deepEqual(await anonymous.getNode(n.nodeId), item);
    assert.deepEqual(
      (await anonymous.nodeHistory(n.nodeId)).items.map((h) => h.action),
      ["registered"],
    );
    const stats = await anonymous.networkStats();
    assert.deepEqual(stats.nodes, { total: 1, online: 0, verified: 0, byStatus: { offline: 1 } });
    assert.deepEqual(stats.gpus, {
      total: 1,
      online: 0,
      verified: 0,
      byModel: [{ model: "rtx-4090", total: 1, online: 0, verified: 0 }],
    });
  });
});
