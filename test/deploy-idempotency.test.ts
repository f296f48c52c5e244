// A deploy retried with the same Idempotency-Key is the same deploy only with the same request
// (issue 18): another body answers 409 IDEMPOTENCY_CONFLICT, as the wallet's routes do, and
// reserves and charges nothing.
import assert from "node:assert/strict";
import { it } from "node:test";
import { assertError, forEachDatabase, httpRequest } from "./support/coordinator.ts";
import { simulatedNetwork } from "./support/simulated-network.ts";

forEachDatabase("deploy idempotency", (db) => {
  it("answers the first cluster to the same request and 409 to another under the same key", async (t) => {
    const s = await simulatedNetwork(db, t, 2);
    const request = { kind: "batch", nodes: 1, hours: 1, gpuModel: "cpu", command: ["true"] };
    const deploy = (body: unknown) =>
      httpRequest(s.net.url, "POST", "/v1/clusters", {
        apiKey: s.consumer.apiKey,
        body,
        headers: { "idempotency-key": "deploy-1" },
      });
    const first = await deploy(request);
    assert.equal(first.status, 201, first.text);
    const id = (first.json as { id: string }).id;
    const again = await deploy({ ...request });
    assert.equal(again.status, 201);
    assert.equal((again.json as { id: string }).id, id, "the same request is the same deploy");

    const wallet = await s.client.wallet();
    const conflict = assertError(
      await deploy({ ...request, hours: 2 }),
      409,
      "IDEMPOTENCY_CONFLICT",
      "same key, another body",
    );
    assert.equal(conflict.details?.clusterId, id);
    assert.deepEqual(await s.client.wallet(), wallet, "nothing charged");
    assert.deepEqual(
      (await s.client.listClusters()).items.map((c) => c.id),
      [id],
      "nothing reserved",
    );

    // Extension is refused the same way (the ledger compares the charge it would make).
    const extend = (hours: number) =>
      httpRequest(s.net.url, "POST", `/v1/clusters/${id}/extend`, {
        apiKey: s.consumer.apiKey,
        body: { hours },
        headers: { "idempotency-key": "extend-1" },
      });
    assert.equal((await extend(1)).status, 200);
    assert.equal((await extend(1)).status, 200);
    const extended = await s.client.wallet();
    assertError(await extend(3), 409, "IDEMPOTENCY_CONFLICT", "extend: same key, another body");
    assert.deepEqual(await s.client.wallet(), extended, "nothing charged");
  });
});
