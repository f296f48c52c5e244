// Routes whose body is optional (issue 18) take none at all, whether the request sends no payload
// or an empty one as JSON; the OpenAPI document lists them with `required: false`.
import assert from "node:assert/strict";
import { it } from "node:test";
import { forEachDatabase, httpRequest } from "./support/coordinator.ts";
import { fixtureHardware, newDeviceKey, signedRegistration } from "./support/devices.ts";

interface Operation {
  requestBody?: { required?: boolean };
}

forEachDatabase("optional bodies", (db) => {
  it("every route whose body is optional accepts an absent or empty body", async (t) => {
    const tc = await db.startCoordinator({ config: { stake: { cooldownMs: 0 } } });
    t.after(() => tc.close());
    const doc = (await httpRequest(tc.url, "GET", "/v1/openapi.json")).json as {
      paths: Record<string, Record<string, Operation>>;
    };
    const optional = Object.entries(doc.paths).flatMap(([path, operations]) =>
      Object.entries(operations)
        .filter(([, op]) => op.requestBody?.required === false)
        .map(([method]) => `${method.toUpperCase()} ${path}`),
    );
    assert.deepEqual(optional.toSorted(), [
      "POST /v1/api-keys",
      "POST /v1/api-keys/{id}/revoke",
      "POST /v1/devices/{id}/revoke",
      "POST /v1/enrollment-tokens",
      "POST /v1/stakes/{id}/unstake",
      "POST /v1/stakes/{id}/withdraw",
    ]);

    const user = await tc.signUp(["supplier"]);
    const device = await user.client.registerDevice(
      signedRegistration(newDeviceKey(), {
        region: "eu-west",
        zone: "eu-west-a",
        hardware: await fixtureHardware("none"),
      }),
    );
    const send = (path: string, apiKey: string, json: boolean) =>
      fetch(new URL(path, tc.url), {
        method: "POST",
        headers: {
          authorization: `Bearer ${apiKey}`,
          "idempotency-key": globalThis.crypto.randomUUID(),
          ...(json ? { "content-type": "application/json" } : {}),
        },
      });
    await tc
      .client(tc.adminKey)
      .deposit({ accountId: user.accountId, currency: "TDM", amount: "5" });
    const stake = await user.client.stake({ nodeId: device.nodeId, amount: "5" });
    for (const [action, json] of [
      ["unstake", false],
      ["withdraw", true],
    ] as const) {
      const answer = await send(`/v1/stakes/${stake.id}/${action}`, user.apiKey, json);
      assert.equal(answer.status, 200, await answer.text());
    }
    for (const json of [false, true]) {
      const created = await send("/v1/api-keys", user.apiKey, json);
      assert.equal(created.status, 201, await created.clone().text());
      const key = (await created.json()) as { apiKeyId: string };
      const revoked = await send(`/v1/api-keys/${key.apiKeyId}/revoke`, user.apiKey, json);
      assert.equal(revoked.status, 200, await revoked.text());
    }
    for (const json of [false, true]) {
      const token = await send("/v1/enrollment-tokens", user.apiKey, json);
      assert.equal(token.status, 201, await token.text());
    }
    const revoked = await send(`/v1/devices/${device.deviceId}/revoke`, tc.adminKey, false);
    assert.equal(revoked.status, 200, await revoked.clone().text());
    assert.equal(((await revoked.json()) as { status: string }).status, "revoked");
    const again = await send(`/v1/devices/${device.deviceId}/revoke`, tc.adminKey, true);
    assert.equal(again.status, 200, await again.text());

    // A route that needs a body still refuses an empty one, with the usual code.
    const empty = await fetch(new URL("/v1/quotes", tc.url), {
      method: "POST",
      headers: { "content-type": "application/json" },
    });
    assert.equal(empty.status, 400);
    assert.equal(
      ((await empty.json()) as { error: { code: string } }).error.code,
      "VALIDATION_FAILED",
    );
  });
});
