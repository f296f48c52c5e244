// A node's public history names no account (issue 18): a consumer who terminates a cluster is not
// linked to it there; the node's owner and admins still read every row as written.
import assert from "node:assert/strict";
import { it } from "node:test";
import { forEachDatabase, httpRequest } from "./support/coordinator.ts";
import { simulatedNetwork } from "./support/simulated-network.ts";

forEachDatabase("public node history", (db) => {
  it("names no account to the public, and every account to the owner and admins", async (t) => {
    const s = await simulatedNetwork(db, t, 1);
    const cluster = await s.client.deployCluster({
      kind: "batch",
      nodes: 1,
      hours: 1,
      gpuModel: "cpu",
      command: ["true"],
    });
    await s.client.terminateCluster(cluster.id);
    const nodeId = cluster.nodes[0]!.nodeId;
    const history = (apiKey?: string) =>
      httpRequest(s.net.url, "GET", `/v1/nodes/${nodeId}/history?limit=500`, {
        ...(apiKey === undefined ? {} : { apiKey }),
      });
    const consumer = s.consumer.accountId;

    const owner = await history(s.supplier.apiKey);
    assert.match(owner.text, new RegExp(`terminated by account:${consumer}`));
    const admin = await history(s.net.adminKey);
    assert.match(admin.text, new RegExp(`terminated by account:${consumer}`));

    for (const viewer of [undefined, s.consumer.apiKey]) {
      const shown = await history(viewer);
      assert.equal(shown.status, 200);
      assert.doesNotMatch(shown.text, /acct_/, "no account id in the public history");
      assert.match(shown.text, /terminated by account/, "the rows are still there");
    }
  });
});
