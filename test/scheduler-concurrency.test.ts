// 50 concurrent deploys against 20 nodes: no node is ever in two active leases, a refused deploy
// reserves and charges nothing — on SQLite (one writer) and on PostgreSQL (real concurrency).
import assert from "node:assert/strict";
import { it } from "node:test";
import { TandemApiError } from "../src/client/client.ts";
import { forEachDatabase } from "./support/coordinator.ts";
import { availableWorker, fund } from "./support/workers.ts";

forEachDatabase("concurrent deploys", (db) => {
  it("never double-books a node", async (t) => {
    const net = await db.startCoordinator({
      config: { heartbeatIntervalMs: 60_000 },
    });
    t.after(() => net.close());
    const { apiKey, accountId } = await net.signUp(["consumer", "supplier"]);
    await fund(net, accountId, "1000");
    const workers = await Promise.all(
      Array.from({ length: 20 }, (_, i) => availableWorker(net, apiKey, `eu-west-${"abc"[i % 3]}`)),
    );
    t.after(() => workers.forEach((w) => w.socket.terminate()));
    const client = net.client(apiKey);
    for (let i = 0; i < 500 && (await client.networkStats()).nodes.byStatus.available !== 20; i++)
      await new Promise((r) => setTimeout(r, 50));
    assert.equal((await client.networkStats()).nodes.byStatus.available, 20);

    const outcomes = await Promise.all(
      Array.from({ length: 50 }, (_, i) =>
        client
          .deployCluster({
            kind: "batch",
            nodes: 1 + (i % 3),
            hours: 1,
            gpuModel: "cpu",
            command: ["true"],
          })
          .then((cluster) => ({ ok: true as const, cluster }))
          .catch((error: unknown) => {
            assert.ok(error instanceof TandemApiError, String(error));
            assert.equal(error.code, "NO_CAPACITY");
            return { ok: false as const };
          }),
      ),
    );
    const placed = outcomes.flatMap((o) => (o.ok ? [o.cluster] : []));
    const nodeIds = placed.flatMap((c) => c.nodes.map((n) => n.nodeId));
    assert.equal(new Set(nodeIds).size, nodeIds.length, "no node in two clusters");
    assert.ok(nodeIds.length <= 20 && nodeIds.length >= 18, `placed ${nodeIds.length} of 20 nodes`);
    assert.ok(
      outcomes.some((o) => !o.ok),
      "some deploys were refused",
    );

    const doubled = await net.coordinator.store.db
      .selectFrom("cluster_nodes")
      .select("node_id")
      .where("active", "=", 1)
      .groupBy("node_id")
      .having((eb) => eb.fn.countAll(), ">", 1)
      .execute();
    assert.deepEqual(doubled, []);
    const clusters = await net.coordinator.store.db.selectFrom("clusters").select("id").execute();
    assert.equal(clusters.length, placed.length, "a refused deploy leaves no cluster behind");
    const wallet = (await (
      await fetch(`${net.url}/v1/wallet`, { headers: { authorization: `Bearer ${apiKey}` } })
    ).json()) as {
      balances: Array<{ currency: string; wallet: string }>;
    };
    // Each placed node costs 0.020000 + 0.25% + 2% fees = 0.020450 USDC for the hour.
    const expected = 1000 - nodeIds.length * 0.02045;
    assert.equal(wallet.balances.find((b) => b.currency === "USDC")?.wallet, expected.toFixed(6));
  });
});
