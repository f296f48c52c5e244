/**
 * Who may reach a route, on SQLite and PostgreSQL: the per-minute budget holds per address and
 * per account whatever Authorization header comes, and a route's roles are checked before its
 * input, so only a caller who may call a route learns what input it takes.
 */
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { test } from "node:test";
import type { Role } from "../src/protocol/accounts.ts";
import {
  assertError,
  forEachDatabase,
  httpRequest,
  listRoutes,
  type RawResponse,
} from "./support/coordinator.ts";

/** Every route that needs a key, and the roles of which a caller must hold one. */
const ROLES: Readonly<Record<string, readonly Role[]>> = {
  "GET /v1/accounts/me": ["consumer", "supplier"],
  "POST /v1/api-keys": ["consumer", "supplier"],
  "GET /v1/api-keys": ["consumer", "supplier"],
  "POST /v1/api-keys/:id/revoke": ["consumer", "supplier"],
  "POST /v1/enrollment-tokens": ["supplier"],
  "GET /v1/enrollment-tokens": ["supplier"],
  "POST /v1/devices/:id/revoke": ["admin"],
  "PUT /v1/nodes/:id/price": ["supplier"],
  "POST /v1/clusters": ["consumer"],
  "GET /v1/clusters": ["consumer"],
  "GET /v1/clusters/:id": ["consumer"],
  "DELETE /v1/clusters/:id": ["consumer"],
  "POST /v1/clusters/:id/extend": ["consumer"],
  "POST /v1/clusters/:id/tasks": ["consumer"],
  "POST /v1/clusters/:id/tasks/batch": ["consumer"],
  "GET /v1/clusters/:id/tasks": ["consumer"],
  "GET /v1/clusters/:id/logs": ["consumer"],
  "GET /v1/clusters/:id/secrets": ["consumer"],
  "PUT /v1/clusters/:id/secrets": ["consumer"],
  "GET /v1/clusters/:id/costs": ["consumer"],
  "POST /v1/wallet/deposits": ["consumer", "supplier"],
  "POST /v1/wallet/withdrawals": ["consumer", "supplier"],
  "GET /v1/wallet": ["consumer", "supplier"],
  "GET /v1/wallet/transactions": ["consumer", "supplier"],
  "GET /v1/wallet/deposit-address": ["consumer", "supplier"],
  "GET /v1/wallet/payout-currency": ["supplier"],
  "PUT /v1/wallet/payout-currency": ["supplier"],
  "GET /v1/admin/ledger-audit": ["admin"],
  "POST /v1/stakes": ["consumer", "supplier"],
  "GET /v1/stakes": ["consumer", "supplier"],
  "GET /v1/rewards": ["consumer", "supplier"],
  "POST /v1/stakes/:id/unstake": ["consumer", "supplier"],
  "POST /v1/stakes/:id/withdraw": ["consumer", "supplier"],
  "PUT /v1/nodes/:id/commission": ["supplier"],
};

/** Every route anyone may call. */
const PUBLIC = new Set([
  "POST /v1/accounts",
  // Anyone may try: an enrollment token, a device's signature or a supplier key decides (api.test.ts).
  "POST /v1/devices",
  "POST /v1/quotes",
  "POST /v1/search",
  "GET /v1/nodes",
  "GET /v1/nodes/:id",
  "GET /v1/nodes/:id/history",
  "GET /v1/nodes/:id/reputation",
  "GET /v1/nodes/:id/uptime",
  "GET /v1/nodes/:id/earnings",
  "GET /v1/network/stats",
  "GET /v1/network/clusters",
  "GET /v1/network/clusters/:id",
  "GET /v1/network/prices",
  "GET /v1/network/regions",
  "GET /v1/catalog/gpus",
  "GET /v1/catalog/regions",
  "GET /v1/token/emission",
  "GET /v1/token",
  "GET /v1/token/blocks",
  "GET /v1/token/blocks/:hour",
  "GET /v1/nodes/:id/stake",
  "GET /v1/health",
  "GET /metrics",
  "GET /v1/openapi.json",
  "GET /v1/events",
  "GET /v1/workers/connect",
  "GET /",
  "GET /*",
]);

/** A key of the right shape that no account holds. */
const madeUpKey = () => `tdm_${randomBytes(32).toString("base64url")}`;

/**
 * A request to `route` ("METHOD /path/:id") that no caller may make: an id of no known shape, an
 * unknown query field and, where the method carries one, an unknown body field.
 */
function badInput(route: string): { method: string; path: string; body?: unknown } {
  const [method, url] = route.split(" ") as [string, string];
  const path = `${url.replace(/:\w+/g, "x")}?bogus=1`;
  return method === "GET" || method === "DELETE"
    ? { method, path }
    : { method, path, body: { bogus: true } };
}

const isAccessError = (response: RawResponse) => [401, 403].includes(response.status);

forEachDatabase("API access", (db) => {
  test("made-up keys from one address share its budget: 401 each, then 429 RATE_LIMITED", async (t) => {
    const tc = await db.startCoordinator({ config: { rateLimitPerMinute: 5 } });
    t.after(() => tc.close());
    const consumer = await tc.signUp(["consumer"]);

    const refused = [
      `Bearer ${madeUpKey()}`,
      `Bearer ${madeUpKey()}`,
      `Bearer ${madeUpKey()} extra`,
      "Bearer junk",
      "Basic YWRtaW46YWRtaW4=",
    ];
    for (const authorization of refused) {
      const response = await httpRequest(tc.url, "GET", "/v1/health", {
        headers: { authorization },
      });
      assertError(response, 401, "UNAUTHENTICATED", authorization);
    }
    for (const path of ["/v1/health", "/v1/accounts/me"]) {
      const limited = await httpRequest(tc.url, "GET", path, { apiKey: madeUpKey() });
      const error = assertError(limited, 429, "RATE_LIMITED", `${path} with a made-up key`);
      assert.equal(typeof error.details?.["retryAfterMs"], "number");
    }
    assertError(await httpRequest(tc.url, "GET", "/v1/health"), 429, "RATE_LIMITED", "no key");

    // A valid key is counted against its account, not the exhausted address.
    const me = await httpRequest(tc.url, "GET", "/v1/accounts/me", { apiKey: consumer.apiKey });
    assert.equal(me.status, 200, me.text);
  });

  test("a valid key's requests count against its account, across its keys, not its address", async (t) => {
    const tc = await db.startCoordinator({ config: { rateLimitPerMinute: 4 } });
    t.after(() => tc.close());
    const consumer = await tc.signUp(["consumer"]);
    const other = await tc.signUp(["supplier"]);

    const second = await httpRequest(tc.url, "POST", "/v1/api-keys", { apiKey: consumer.apiKey });
    assert.equal(second.status, 201, second.text);
    const secondKey = (second.json as { apiKey: string }).apiKey;
    for (const apiKey of [consumer.apiKey, secondKey, consumer.apiKey]) {
      const me = await httpRequest(tc.url, "GET", "/v1/accounts/me", { apiKey });
      assert.equal(me.status, 200, me.text);
    }
    for (const apiKey of [secondKey, consumer.apiKey]) {
      const limited = await httpRequest(tc.url, "GET", "/v1/accounts/me", { apiKey });
      assertError(limited, 429, "RATE_LIMITED", "the account's budget is spent");
    }

    // The address and another account still have their whole budgets.
    for (let i = 0; i < 4; i++) {
      assert.equal((await httpRequest(tc.url, "GET", "/v1/health")).status, 200);
      const me = await httpRequest(tc.url, "GET", "/v1/accounts/me", { apiKey: other.apiKey });
      assert.equal(me.status, 200, me.text);
    }
    assertError(await httpRequest(tc.url, "GET", "/v1/health"), 429, "RATE_LIMITED");
  });

  test("POST /v1/clusters checks key and role before the body: 401, 403, then 400", async (t) => {
    const tc = await db.startCoordinator();
    t.after(() => tc.close());
    const consumer = await tc.signUp(["consumer"]);
    const supplier = await tc.signUp(["supplier"]);
    const bodies: unknown[] = [{ bogus: true }, "{not json", "x".repeat(300 * 1024)];

    for (const body of bodies) {
      const label = typeof body === "string" ? `body ${body.slice(0, 9)}…` : JSON.stringify(body);
      const anonymous = await httpRequest(tc.url, "POST", "/v1/clusters", { body });
      const error = assertError(anonymous, 401, "UNAUTHENTICATED", `no key, ${label}`);
      assert.equal(error.details, undefined);
      assert.doesNotMatch(anonymous.text, /bogus|kind|image|hours/);
      const madeUp = await httpRequest(tc.url, "POST", "/v1/clusters", {
        apiKey: madeUpKey(),
        body,
      });
      assertError(madeUp, 401, "UNAUTHENTICATED", `made-up key, ${label}`);
      const wrongRole = await httpRequest(tc.url, "POST", "/v1/clusters", {
        apiKey: supplier.apiKey,
        body,
      });
      const forbidden = assertError(wrongRole, 403, "FORBIDDEN", `supplier, ${label}`);
      assert.deepEqual(forbidden.details, { required: ["consumer"], held: ["supplier"] });
    }

    const invalid = await httpRequest(tc.url, "POST", "/v1/clusters", {
      apiKey: consumer.apiKey,
      body: { bogus: true },
    });
    assertError(invalid, 400, "VALIDATION_FAILED", "consumer, invalid body");
  });

  test("every route is public or declares its roles, checked before its input is read", async (t) => {
    const tc = await db.startCoordinator();
    t.after(() => tc.close());
    const consumer = await tc.signUp(["consumer"]);
    const supplier = await tc.signUp(["supplier"]);
    const both = await tc.signUp(["consumer", "supplier"]);
    const keyOf: Record<string, string> = {
      consumer: consumer.apiKey,
      supplier: supplier.apiKey,
      "consumer,supplier": both.apiKey,
    };

    const routes = listRoutes(tc.coordinator.app)
      .filter((r) => r.method !== "HEAD")
      .map((r) => `${r.method} ${r.url}`);
    assert.deepEqual(
      routes.filter((r) => ROLES[r] === undefined && !PUBLIC.has(r)),
      [],
      "routes that are neither public nor role-gated here",
    );
    assert.deepEqual(
      [...Object.keys(ROLES), ...PUBLIC].filter((r) => !routes.includes(r)),
      [],
      "routes listed here that the coordinator lacks",
    );

    const openapi = (await httpRequest(tc.url, "GET", "/v1/openapi.json")).json as {
      paths: Record<string, Record<string, { security?: unknown }>>;
    };
    for (const route of routes) {
      const [method, url] = route.split(" ") as [string, string];
      const roles = ROLES[route];
      const { path, body } = badInput(route);
      const send = (apiKey?: string) =>
        httpRequest(tc.url, method, path, { ...(apiKey === undefined ? {} : { apiKey }), body });

      const documented = openapi.paths[url.replace(/:(\w+)/g, "{$1}")]?.[method.toLowerCase()];
      if (documented !== undefined) {
        assert.deepEqual(
          documented.security,
          roles === undefined ? undefined : [{ apiKey: [] }],
          `${route} security in the OpenAPI document`,
        );
      }
      if (roles === undefined) {
        const anonymous = await send();
        assert.ok(!isAccessError(anonymous), `${route} is public: ${anonymous.status}`);
        continue;
      }
      assertError(await send(), 401, "UNAUTHENTICATED", `${route} without a key`);
      // Each account that holds none of the roles is refused, and told which it lacks.
      for (const [held, apiKey] of Object.entries(keyOf)) {
        const holds = held.split(",").some((r) => roles.includes(r as Role));
        const response = await send(apiKey);
        if (holds) {
          assertError(response, 400, "VALIDATION_FAILED", `${route} as ${held}`);
        } else {
          const error = assertError(response, 403, "FORBIDDEN", `${route} as ${held}`);
          assert.deepEqual(error.details, { required: roles, held: held.split(",") }, route);
        }
      }
      assertError(await send(tc.adminKey), 400, "VALIDATION_FAILED", `${route} as admin`);
    }
  });
});
