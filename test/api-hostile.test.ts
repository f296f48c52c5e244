/**
 * Hostile input, on SQLite and PostgreSQL: SQL-injection strings, NUL bytes, Unicode, 10 kB and
 * 1 MB strings go into every string field of every route — body, query, path parameters, field
 * names and the Authorization header. Each request must be refused with its exact 4xx code and
 * leave every table exactly as it was; none may answer 500.
 *
 * One deliberate exception: a device's free-text self-description (CPU model, GPU name, OS
 * release and distro) is data its owner signs. A signed report carrying `' OR 1=1 --` there is
 * a valid registration: it must be stored verbatim as inert text, add exactly the new device's
 * rows and touch nothing else. Control characters and over-long text are refused there too.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import type { RegisterDeviceRequest } from "../src/protocol/devices.ts";
import {
  TABLES,
  assertError,
  dumpDatabase,
  forEachDatabase,
  httpRequest,
  listRoutes,
  type RawResponse,
  type TestCoordinator,
} from "./support/coordinator.ts";
import { fixtureHardware, newDeviceKey, signedRegistration } from "./support/devices.ts";

const HOSTILE: ReadonlyArray<readonly [string, string]> = [
  ["sql-or", "' OR 1=1 --"],
  ["sql-drop", '"; DROP TABLE nodes; --'],
  ["sql-delete", "'); DELETE FROM accounts; --"],
  ["nul", "\u0000"],
  ["embedded-nul", "h100\u0000' OR '1'='1"],
  ["unicode", "Ünïcødé 名前 🚀 \u202e"],
  ["percent", "%27%20OR%201%3D1%00"],
  ["10kB", "B".repeat(10_000)],
  ["1MB", "A".repeat(1024 * 1024)],
];

/** What free text may not hold: control characters other than tab and line breaks. */
const CONTROL = /[^\P{Cc}\t\n\r]/u;
const BODY_LIMIT_BYTES = 256 * 1024;
const URL_LIMIT_BYTES = 16 * 1024;
/** Fastify's longest path parameter; a longer one matches no route. */
const MAX_PARAM_LENGTH = 100;

type Expect = { status: number; code: string } | "accepted";
const invalid: Expect = { status: 400, code: "VALIDATION_FAILED" };

interface Case {
  label: string;
  method: string;
  path: string;
  apiKey?: string;
  body?: unknown;
  headers?: Record<string, string>;
  expect: Expect;
  /** For an accepted device registration: the node must show this text. */
  verbatim?: { field: string; value: string };
}

/** Free-text fields of the hardware report and their longest length. */
const FREE_TEXT: Readonly<Record<string, number>> = {
  "hardware.cpu.model": 256,
  "hardware.os.release": 128,
  "hardware.os.distro": 128,
  "hardware.gpus.0.name": 128,
};
const DEVICE_FIELDS = [
  "publicKey",
  "signature",
  "region",
  "zone",
  "hardware.cpu.model",
  "hardware.cpu.arch",
  "hardware.os.platform",
  "hardware.os.release",
  "hardware.os.distro",
  "hardware.gpus.0.uuid",
  "hardware.gpus.0.name",
  "hardware.gpus.0.driverVersion",
  "hardware.gpus.0.pciBusId",
];

const isFreeText = (field: string, value: string) =>
  field in FREE_TEXT && value.length <= FREE_TEXT[field]! && !CONTROL.test(value);

/**
 * What a request with `value` somewhere in its URL gets, given what the value itself deserves. A
 * path parameter over Fastify's limit matches no route: a GET then falls to the explorer's page
 * route, which answers the API's 404 for `/v1/*`; a POST has no such route and gets 414.
 */
function inUrl(value: string, deserved: Expect, param?: "GET" | "POST"): Expect {
  const encoded = encodeURIComponent(value);
  if (encoded.length > URL_LIMIT_BYTES) return { status: 431, code: "PAYLOAD_TOO_LARGE" };
  if (param !== undefined && encoded.length > MAX_PARAM_LENGTH) {
    return param === "GET"
      ? { status: 404, code: "NOT_FOUND" }
      : { status: 414, code: "VALIDATION_FAILED" };
  }
  return deserved;
}

function inBody(body: unknown, deserved: Expect): Expect {
  return Buffer.byteLength(JSON.stringify(body)) > BODY_LIMIT_BYTES
    ? { status: 413, code: "PAYLOAD_TOO_LARGE" }
    : deserved;
}

function withField<T>(value: T, path: string, replacement: unknown): T {
  const copy = structuredClone(value) as Record<string, unknown>;
  const keys = path.split(".");
  let target: Record<string, unknown> = copy;
  for (const key of keys.slice(0, -1)) target = target[key] as Record<string, unknown>;
  target[keys.at(-1)!] = replacement;
  return copy as T;
}

/** Header values fetch can carry at all (no NUL, CR, LF, nothing beyond Latin-1). */
const headerSafe = (value: string) => /^[\x20-\x7e]*$/.test(value);

async function world(tc: TestCoordinator) {
  const consumer = await tc.signUp(["consumer"]);
  const supplier = await tc.signUp(["supplier"]);
  const hardware = await fixtureHardware("rtx4090");
  const device = newDeviceKey();
  const registration = signedRegistration(device, {
    region: "eu-west",
    zone: "eu-west-a",
    hardware,
  });
  const registered = await httpRequest(tc.url, "POST", "/v1/devices", {
    apiKey: supplier.apiKey,
    body: registration,
  });
  assert.equal(registered.status, 201);
  const { deviceId, nodeId } = registered.json as { deviceId: string; nodeId: string };
  const consumerKeys = await consumer.client.listApiKeys();
  return {
    consumer: consumer.apiKey,
    supplier: supplier.apiKey,
    admin: tc.adminKey,
    deviceId,
    nodeId,
    apiKeyId: consumerKeys.items[0]!.id,
    registration,
  };
}

function cases(w: Awaited<ReturnType<typeof world>>): Case[] {
  const all: Case[] = [];
  const unknownDevice = "dev_00000000000000000000000000";
  const unknownKey = "key_00000000000000000000000000";
  for (const [name, h] of HOSTILE) {
    const add = (c: Omit<Case, "label">, where: string) =>
      all.push({ ...c, label: `${where} ← ${name}` });

    // Bodies, including hostile field names.
    for (const body of [{ roles: [h] }, { roles: ["consumer"], [h]: "x" }]) {
      add(
        { method: "POST", path: "/v1/accounts", body, expect: inBody(body, invalid) },
        "POST /v1/accounts body",
      );
    }
    const keyBody = { [h]: h };
    add(
      {
        method: "POST",
        path: "/v1/api-keys",
        apiKey: w.consumer,
        body: keyBody,
        expect: inBody(keyBody, invalid),
      },
      "POST /v1/api-keys body",
    );
    add(
      {
        method: "POST",
        path: `/v1/api-keys/${unknownKey}/revoke`,
        apiKey: w.consumer,
        body: { note: h },
        expect: inBody({ note: h }, invalid),
      },
      "POST /v1/api-keys/:id/revoke body",
    );
    const reason = { reason: h };
    const reasonIsText = h.length <= 500 && !CONTROL.test(h);
    add(
      {
        method: "POST",
        path: `/v1/devices/${unknownDevice}/revoke`,
        apiKey: w.admin,
        body: reason,
        expect: inBody(reason, reasonIsText ? { status: 404, code: "NOT_FOUND" } : invalid),
      },
      "POST /v1/devices/:id/revoke reason",
    );
    add(
      {
        method: "POST",
        path: `/v1/devices/${w.deviceId}/revoke`,
        apiKey: w.admin,
        body: { [h]: true },
        expect: inBody({ [h]: true }, invalid),
      },
      "POST /v1/devices/:id/revoke field name",
    );

    // Every field of a device registration: with the original signature (now stale), and
    // re-signed by a fresh device key over the hostile report.
    for (const field of DEVICE_FIELDS) {
      const stale = withField(w.registration, field, h);
      add(
        {
          method: "POST",
          path: "/v1/devices",
          apiKey: w.supplier,
          body: stale,
          expect: inBody(
            stale,
            isFreeText(field, h) ? { status: 400, code: "BAD_SIGNATURE" } : invalid,
          ),
        },
        `POST /v1/devices ${field} (stale signature)`,
      );
      if (field === "publicKey" || field === "signature") continue;
      // A card of its own, so an accepted report does not flag the first device's GPU as shared.
      const ownCard = withField(w.registration, "hardware.gpus.0.uuid", `GPU-${all.length}`);
      const { region, zone, hardware } = withField(ownCard, field, h);
      const signed: RegisterDeviceRequest = signedRegistration(newDeviceKey(), {
        region,
        zone,
        hardware,
      });
      add(
        {
          method: "POST",
          path: "/v1/devices",
          apiKey: w.supplier,
          body: signed,
          expect: inBody(signed, isFreeText(field, h) ? "accepted" : invalid),
          verbatim: { field, value: h },
        },
        `POST /v1/devices ${field} (signed)`,
      );
    }
    const devicePlus = { ...w.registration, [h]: 1 };
    add(
      {
        method: "POST",
        path: "/v1/devices",
        apiKey: w.supplier,
        body: devicePlus,
        expect: inBody(devicePlus, invalid),
      },
      "POST /v1/devices field name",
    );

    // Path parameters.
    const param = encodeURIComponent(h);
    for (const [method, path, apiKey, body] of [
      ["GET", `/v1/nodes/${param}`, undefined, undefined],
      ["GET", `/v1/nodes/${param}/history`, undefined, undefined],
      ["POST", `/v1/devices/${param}/revoke`, w.admin, {}],
      ["POST", `/v1/api-keys/${param}/revoke`, w.consumer, undefined],
    ] as const) {
      add(
        {
          method,
          path,
          ...(apiKey === undefined ? {} : { apiKey }),
          body,
          expect: inUrl(h, invalid, method),
        },
        `${method} ${path.replace(param, ":id")}`,
      );
    }

    // Query strings: every field of the two listings, and an unknown field everywhere.
    const q = encodeURIComponent(h);
    for (const field of [
      "gpuModel",
      "region",
      "zone",
      "status",
      "minUptime",
      "minVramMiB",
      "limit",
      "cursor",
    ]) {
      add(
        { method: "GET", path: `/v1/nodes?${field}=${q}`, expect: inUrl(h, invalid) },
        `GET /v1/nodes?${field}`,
      );
    }
    for (const field of ["limit", "cursor"]) {
      add(
        {
          method: "GET",
          path: `/v1/nodes/${w.nodeId}/history?${field}=${q}`,
          expect: inUrl(h, invalid),
        },
        `GET /v1/nodes/:id/history?${field}`,
      );
    }
    for (const [method, path, apiKey] of [
      ["GET", "/v1/health", undefined],
      ["GET", "/metrics", undefined],
      ["GET", "/v1/openapi.json", undefined],
      ["GET", "/v1/network/stats", undefined],
      ["GET", "/v1/events", undefined],
      ["GET", "/v1/workers/connect", undefined],
      ["GET", "/v1/nodes", undefined],
      ["GET", `/v1/nodes/${w.nodeId}`, undefined],
      ["GET", `/v1/nodes/${w.nodeId}/history`, undefined],
      ["GET", "/v1/accounts/me", w.consumer],
      ["GET", "/v1/api-keys", w.consumer],
      ["POST", "/v1/api-keys", w.consumer],
      ["POST", "/v1/accounts", undefined],
      ["POST", "/v1/devices", w.supplier],
      ["POST", `/v1/devices/${w.deviceId}/revoke`, w.admin],
      ["POST", `/v1/api-keys/${w.apiKeyId}/revoke`, w.consumer],
    ] as const) {
      const body =
        path === "/v1/accounts"
          ? { roles: ["consumer"] }
          : path === "/v1/devices"
            ? w.registration
            : undefined;
      for (const query of [`q=${q}`, `${q}=1`]) {
        add(
          {
            method,
            path: `${path}?${query}`,
            ...(apiKey === undefined ? {} : { apiKey }),
            body,
            expect: inUrl(h, invalid),
          },
          `${method} ${path} unknown query ${query.startsWith("q=") ? "value" : "name"}`,
        );
      }
    }

    // The API key itself.
    if (headerSafe(h)) {
      add(
        {
          method: "GET",
          path: "/v1/nodes",
          headers: { authorization: `Bearer ${h}` },
          expect:
            h.length > URL_LIMIT_BYTES
              ? { status: 431, code: "PAYLOAD_TOO_LARGE" }
              : { status: 401, code: "UNAUTHENTICATED" },
        },
        "Authorization header",
      );
    }
  }
  return all;
}

/** The routes the cases above cover, as the router names them. */
const COVERED = new Set([
  "POST /v1/accounts",
  "GET /v1/accounts/me",
  "POST /v1/api-keys",
  "GET /v1/api-keys",
  "POST /v1/api-keys/:id/revoke",
  "POST /v1/devices",
  "POST /v1/devices/:id/revoke",
  "GET /v1/nodes",
  "GET /v1/nodes/:id",
  "GET /v1/nodes/:id/history",
  "GET /v1/network/stats",
  "GET /v1/health",
  "GET /v1/openapi.json",
  "GET /metrics",
  "GET /v1/events",
  "GET /v1/workers/connect",
  // The explorer's pages read their own query strings (deep links) and never touch the database.
  "GET /",
  "GET /*",
]);

/**
 * Routes this file has no field-by-field cases for (other subsystems' routes): hostile path
 * parameters, query fields and body fields, sent with the admin key, must still get a 4xx.
 */
function genericCases(
  routes: ReadonlyArray<{ method: string; url: string }>,
  admin: string,
): Case[] {
  const all: Case[] = [];
  for (const { method, url } of routes) {
    for (const [name, h] of HOSTILE) {
      const label = `${method} ${url} (generic) ← ${name}`;
      const anyClientError: Expect = { status: 0, code: "" };
      const e = encodeURIComponent(h);
      if (url.includes(":")) {
        const path = url.replace(/:\w+/g, e);
        all.push({ label: `${label} params`, method, path, apiKey: admin, expect: anyClientError });
      }
      const path = url.replace(/:\w+/g, "x");
      for (const query of [`q=${e}`, `${e}=1`]) {
        all.push({
          label: `${label} query`,
          method,
          path: `${path}?${query}`,
          apiKey: admin,
          expect: anyClientError,
        });
      }
      if (method === "POST") {
        all.push({
          label: `${label} body`,
          method,
          path,
          apiKey: admin,
          body: { [h]: h },
          expect: anyClientError,
        });
      }
    }
  }
  return all;
}

function checkAnswer(c: Case, response: RawResponse): void {
  assert.notEqual(response.status, 500, `${c.label}: 500 ${response.text.slice(0, 300)}`);
  if (c.expect === "accepted") {
    assert.equal(
      response.status,
      201,
      `${c.label}: ${response.status} ${response.text.slice(0, 300)}`,
    );
  } else if (c.expect.status === 0) {
    assert.ok(response.status >= 400 && response.status < 500, `${c.label}: ${response.status}`);
    const code = (response.json as { error?: { code?: unknown } } | undefined)?.error?.code;
    assertError(response, response.status, String(code), c.label);
  } else {
    assertError(response, c.expect.status, c.expect.code, c.label);
  }
}

/** After an accepted registration: exactly the new device's rows were added, nothing else moved. */
function assertOnlyNewDevice(
  label: string,
  before: Record<string, string[]>,
  after: Record<string, string[]>,
) {
  assert.deepEqual(Object.keys(after), Object.keys(before), label);
  const added: Record<string, number> = {};
  for (const table of Object.keys(before)) {
    const old = new Set(before[table]);
    const now = new Set(after[table]);
    for (const row of old) assert.ok(now.has(row), `${label}: a ${table} row changed or vanished`);
    added[table] = now.size - old.size;
  }
  const foundation: Record<string, number> = {
    devices: 1,
    nodes: 1,
    node_history: 1,
    gpu_uuids: 1,
  };
  assert.deepEqual(
    Object.fromEntries(TABLES.map((table) => [table, added[table]])),
    Object.fromEntries(TABLES.map((table) => [table, foundation[table] ?? 0])),
    label,
  );
}

async function assertVerbatim(tc: TestCoordinator, c: Case, response: RawResponse) {
  const { nodeId } = response.json as { nodeId: string };
  const node = await tc.client().getNode(nodeId);
  const value = c.verbatim!.value;
  const shown: Record<string, string> = {
    "hardware.cpu.model": node.cpu.model,
    "hardware.gpus.0.name": node.gpus[0]!.name,
    "hardware.os.release": node.os,
    "hardware.os.distro": node.os,
  };
  const field = c.verbatim!.field;
  assert.ok(shown[field]!.includes(value), `${c.label}: stored as ${JSON.stringify(shown[field])}`);
}

forEachDatabase("hostile input", (db) => {
  test("every string field of every route: an exact 4xx, an unchanged database, never a 500", async (t) => {
    const tc = await db.startCoordinator();
    t.after(() => tc.close());
    const w = await world(tc);

    const others = listRoutes(tc.coordinator.app).filter(
      (r) => r.method !== "HEAD" && !COVERED.has(`${r.method} ${r.url}`),
    );
    if (others.length > 0) {
      t.diagnostic(
        `generic hostile cases only (add field-level ones): ${others.map((r) => `${r.method} ${r.url}`).join(", ")}`,
      );
    }

    const all = [...cases(w), ...genericCases(others, w.admin)];
    let accepted = 0;
    let before = await dumpDatabase(tc.coordinator.store);
    for (const c of all) {
      const response = await httpRequest(tc.url, c.method, c.path, {
        ...(c.apiKey === undefined ? {} : { apiKey: c.apiKey }),
        ...(c.headers === undefined ? {} : { headers: c.headers }),
        body: c.body,
      });
      checkAnswer(c, response);
      const after = await dumpDatabase(tc.coordinator.store);
      if (c.expect === "accepted") {
        accepted++;
        assertOnlyNewDevice(c.label, before, after);
        await assertVerbatim(tc, c, response);
      } else {
        assert.deepEqual(after, before, `${c.label}: the database changed`);
      }
      before = after;
    }
    // The exception stays small: SQL and Unicode text in the four free-text fields only.
    assert.equal(accepted, 4 * 5);
    assert.ok(all.length > 600, `only ${all.length} cases`);

    // The explorer's pages take any query and never touch the database.
    for (const [, h] of HOSTILE.filter(([name]) => name !== "1MB")) {
      const before = await dumpDatabase(tc.coordinator.store);
      for (const path of [`/?q=${encodeURIComponent(h)}`, `/nodes/x?${encodeURIComponent(h)}=1`]) {
        const response = await httpRequest(tc.url, "GET", path);
        assert.ok([200, 503].includes(response.status), `${path}: ${response.status}`);
      }
      assert.deepEqual(await dumpDatabase(tc.coordinator.store), before);
    }
  });

  test("a revocation reason is stored verbatim, whatever it says", async (t) => {
    const tc = await db.startCoordinator();
    t.after(() => tc.close());
    const w = await world(tc);
    const reason = "'); DROP TABLE devices; -- 名前 🚀";
    const response = await httpRequest(tc.url, "POST", `/v1/devices/${w.deviceId}/revoke`, {
      apiKey: w.admin,
      body: { reason },
    });
    assert.equal(response.status, 200, response.text);
    const history = await tc.client().nodeHistory(w.nodeId);
    assert.equal(history.items.at(-1)?.detail["reason"], reason);
    const tables = await dumpDatabase(tc.coordinator.store);
    for (const table of TABLES)
      assert.ok(tables[table]!.length > 0 || table === "node_intervals", table);
  });
});
