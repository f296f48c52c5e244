// Market pricing: a supplier prices its own node, search and quotes follow, nobody else can.
import assert from "node:assert/strict";
import { it } from "node:test";
import { TandemApiError } from "../src/client/client.ts";
import { forEachDatabase } from "./support/coordinator.ts";
import { availableWorker } from "./support/workers.ts";

async function refusal(promise: Promise<unknown>): Promise<[number, string]> {
  try {
    await promise;
  } catch (error) {
    assert.ok(error instanceof TandemApiError, String(error));
    return [error.status, error.code];
  }
  throw new Error("expected a refusal");
}

forEachDatabase("market pricing", (db) => {
  it("lets a supplier price its own node and nobody else's", async (t) => {
    const net = await db.startCoordinator({
      config: { pricingMode: "market" },
    });
    t.after(() => net.close());
    const supplier = await net.signUp(["supplier"]);
    const other = await net.signUp(["supplier"]);
    const worker = await availableWorker(net, supplier.apiKey, "eu-west-a");
    t.after(() => worker.socket.terminate());
    const consumer = net.client();
    for (
      let i = 0;
      i < 500 && !(await consumer.search({ nodes: 1, gpuModel: "cpu" })).satisfiable;
      i++
    )
      await new Promise((r) => setTimeout(r, 20));

    assert.equal(
      (await consumer.search({ nodes: 1, gpuModel: "cpu" })).offers[0]?.pricePerHour,
      "0.020000",
      "catalog price until set",
    );
    await supplier.client.setNodePrice(worker.nodeId, "0.5");
    let offer = (await consumer.search({ nodes: 1, gpuModel: "cpu", currency: "TDM" })).offers[0];
    for (let i = 0; i < 250 && offer?.pricePerHour !== "1.000000"; i++) {
      await new Promise((r) => setTimeout(r, 20));
      offer = (await consumer.search({ nodes: 1, gpuModel: "cpu", currency: "TDM" })).offers[0];
    }
    assert.equal(offer?.pricePerHour, "1.000000", "0.5 USD at the oracle's 2 TDM per USD");
    assert.equal(
      (await consumer.search({ nodes: 1, gpuModel: "cpu", maxPricePerHour: "0.4" })).satisfiable,
      false,
    );

    assert.deepEqual(await refusal(other.client.setNodePrice(worker.nodeId, "0.1")), [
      404,
      "NOT_FOUND",
    ]);
    assert.deepEqual(await refusal(supplier.client.setNodePrice(worker.nodeId, "0")), [
      400,
      "INVALID_AMOUNT",
    ]);
    assert.deepEqual(await refusal(supplier.client.setNodePrice(worker.nodeId, "-1")), [
      400,
      "INVALID_AMOUNT",
    ]);
    assert.deepEqual(await refusal(supplier.client.setNodePrice(worker.nodeId, "9223372036854")), [
      400,
      "INVALID_AMOUNT",
    ]);
    const history = await consumer.nodeHistory(worker.nodeId);
    assert.deepEqual(history.items.at(-1)?.detail, {
      changed: ["price"],
      pricePerHour: "0.500000",
      currency: "USD",
      previous: null,
    });
  });

  it("refuses supplier prices on a catalog-priced network", async (t) => {
    const net = await db.startCoordinator({});
    t.after(() => net.close());
    const supplier = await net.signUp(["supplier"]);
    const worker = await availableWorker(net, supplier.apiKey, "eu-west-a");
    t.after(() => worker.socket.terminate());
    assert.deepEqual(await refusal(supplier.client.setNodePrice(worker.nodeId, "0.5")), [
      409,
      "CONFLICT",
    ]);
  });
});
