// A node's earnings (GET /v1/nodes/:id/earnings) from real settled and slashed leases, on a manual
// clock with simulated workers over real WebSockets: a node is lost mid-lease (slashed), a
// replacement serves the rest; each node's figures come from its own leases' postings and add up
// to the cluster's costs; the 30-day window follows the clock.
import assert from "node:assert/strict";
import { it } from "node:test";
import type { NodeEarnings } from "../src/protocol/nodes.ts";
import { assertError, forEachDatabase, httpRequest } from "./support/coordinator.ts";
import { MINUTE, simulatedNetwork } from "./support/simulated-network.ts";

const DAY = 86_400_000;
const ZERO_FIGURES = {
  served: "0.000000",
  paidOut: "0.000000",
  supplierFees: "0.000000",
  burned: "0.000000",
  slashed: "0.000000",
};

/** Σ of one figure over some nodes' all-time USDC earnings, in units. */
function total(earnings: readonly NodeEarnings[], figure: keyof typeof ZERO_FIGURES): bigint {
  let sum = 0n;
  for (const e of earnings)
    for (const c of e.currencies)
      if (c.currency === "USDC") sum += BigInt(c.allTime[figure].replace(".", ""));
  return sum;
}

forEachDatabase("node earnings", (db) => {
  it("pays each node its served minutes, shows its slash, and keeps a 30-day window", async (t) => {
    const s = await simulatedNetwork(db, t, 2);
    const publicClient = s.net.client();
    const [a, b] = s.pool as [(typeof s.pool)[0], (typeof s.pool)[0]];
    assert.deepEqual((await publicClient.nodeEarnings(a.nodeId)).currencies, [], "never leased");

    const deployed = await s.client.deployCluster({
      kind: "batch",
      nodes: 1,
      hours: 2,
      gpuModel: "cpu",
      command: ["true"],
    });
    const first = s.roleOf(deployed, 0);
    const spare = first === a ? b : a;
    assert.equal((await s.nextStart(first)).rank, 0);
    first.send({ type: "job-accepted", clusterId: deployed.id, rank: 0, attempt: 0, port: 29_500 });
    await s.until(deployed.id, (v) => v.status === "running", "ran");
    s.clock.advance(5 * MINUTE);
    await s.silence(first); // last beat at 5 min: its lease is paid 5 minutes, then slashed
    const moved = await s.nextStart(spare);
    spare.send({ type: "job-accepted", clusterId: deployed.id, rank: 0, attempt: 1, port: 29_501 });
    await s.tookOver(deployed.id);
    s.clock.advance(25 * MINUTE);
    await s.beat([spare]);
    assert.equal((await s.client.terminateCluster(deployed.id)).status, "terminated");
    assert.equal(moved.rank, 0);

    const lost = await publicClient.nodeEarnings(first.nodeId);
    const served = await publicClient.nodeEarnings(spare.nodeId);
    // 5 whole minutes of 0.02/h = 1,666 units; the supplier fee 0.25% and burn 0.5% round down;
    // the slash took the supplier's unpaid earnings at the time, this lease's net pay.
    assert.deepEqual(lost.currencies, [
      {
        currency: "USDC",
        allTime: {
          served: "0.001666",
          paidOut: "0.001654",
          supplierFees: "0.000004",
          burned: "0.000008",
          slashed: "0.001654",
        },
        last30d: {
          served: "0.001666",
          paidOut: "0.001654",
          supplierFees: "0.000004",
          burned: "0.000008",
          slashed: "0.001654",
        },
      },
    ]);
    assert.equal(served.currencies[0]?.allTime.slashed, "0.000000");
    assert.equal(served.currencies[0]?.allTime.served, "0.008333", "25 minutes from its accept");

    // Per figure, the nodes' earnings are the cluster's costs, split by lease.
    const costs = await s.costs(deployed.id);
    const both = [lost, served];
    const units = (text: string | undefined) => BigInt(text!.replace(".", ""));
    assert.equal(total(both, "served"), units(costs.served));
    assert.equal(total(both, "paidOut"), units(costs.paidOut));
    assert.equal(total(both, "supplierFees"), units(costs.supplierFees));
    assert.equal(total(both, "burned"), units(costs.burned));
    assert.equal(total(both, "slashed"), units(costs.slashCompensation));

    // 31 days later the window is empty; all time is unchanged.
    s.clock.advance(31 * DAY);
    const later = await publicClient.nodeEarnings(first.nodeId);
    assert.deepEqual(later.currencies[0]?.allTime, lost.currencies[0]?.allTime);
    assert.deepEqual(later.currencies[0]?.last30d, ZERO_FIGURES);
    assert.equal(Date.parse(later.asOf) - Date.parse(later.recentFrom), 30 * DAY);

    const missing = await httpRequest(
      s.net.url,
      "GET",
      `/v1/nodes/${first.nodeId.slice(0, -2)}zz/earnings`,
    );
    assertError(missing, 404, "NOT_FOUND");
    assertError(
      await httpRequest(s.net.url, "GET", "/v1/nodes/nope/earnings"),
      400,
      "VALIDATION_FAILED",
    );
  });
});
