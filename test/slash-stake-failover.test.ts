// Slashes from stake through the failover (issue 16 item 5), on a manual clock with simulated
// workers over real WebSockets, on SQLite and PostgreSQL: a staked node that fails pays the
// consumer the full hour of its rate from its stake; a node staked too little pays from its stake
// first and its supplier's earnings the rest; a consumer's fault (a missing image, a job the
// runtime refuses, a non-zero exit) slashes nothing and leaves the stake whole.
import assert from "node:assert/strict";
import { it } from "node:test";
import type { ClusterView } from "../src/protocol/clusters.ts";
import { forEachDatabase } from "./support/coordinator.ts";
import { MINUTE, simulatedNetwork, type SimulatedNetwork } from "./support/simulated-network.ts";

/** The supplier holds `tdm` and stakes `each` on every node; the consumer gets `usdc` more. */
async function staked(s: SimulatedNetwork, each: string, usdc = "0") {
  const admin = s.net.client(s.net.adminKey);
  await admin.deposit({ accountId: s.supplier.accountId, currency: "TDM", amount: "100" });
  if (usdc !== "0")
    await admin.deposit({ accountId: s.consumer.accountId, currency: "USDC", amount: usdc });
  for (const worker of s.pool)
    await s.supplier.client.stake({ nodeId: worker.nodeId, amount: each });
}

/** A one-rank batch cluster, running on the node the placement picked. */
async function running(s: SimulatedNetwork): Promise<ClusterView> {
  const cluster = await s.client.deployCluster({
    kind: "batch",
    nodes: 1,
    hours: 2,
    gpuModel: "cpu",
    command: ["true"],
  });
  const rank0 = s.roleOf(cluster, 0);
  await s.nextStart(rank0);
  rank0.send({ type: "job-accepted", clusterId: cluster.id, rank: 0, attempt: 0, port: 29_500 });
  return s.until(cluster.id, (v) => v.status === "running", "ran");
}

const slashedEvent = (s: SimulatedNetwork, id: string) =>
  s
    .until(id, (v) => v.events.some((e) => e.type === "slashed"), "slashed")
    .then((v) => v.events.find((e) => e.type === "slashed")!.detail);

const stakeOf = async (s: SimulatedNetwork, nodeId: string) =>
  (await s.net.client().nodeStake(nodeId)).staked;

forEachDatabase("slashes from stake through the failover", (db) => {
  it("a failed staked node's consumer receives the full hour of its rate, from the stake", async (t) => {
    const s = await simulatedNetwork(db, t, 2);
    await staked(s, "10");
    const cluster = await running(s);
    const victim = s.roleOf(cluster, 0);
    const walletBefore = (await s.client.wallet()).balances.find((b) => b.currency === "USDC")!;
    s.clock.advance(5 * MINUTE);
    await s.silence(victim);

    const slashed = await slashedEvent(s, cluster.id);
    assert.deepEqual(
      [slashed.owed, slashed.taken, slashed.fromStake, slashed.fromEarnings, slashed.shortfall],
      ["0.020000", "0.020000", "0.020000", "0.000000", "0.000000"],
      "one hour at 0.02 USDC/h, all of it from the stake (0.04 TDM at 2 TDM per USD)",
    );
    assert.equal(await stakeOf(s, victim.nodeId), "9.960000");
    // Placement sees the slashed stake once the node is back: no longer ≥ 10 TDM.
    const placed = async (minStake: string) => {
      const found = await s.client.search({ nodes: 1, gpuModel: "cpu", minStake });
      return found.offers.map((o) => o.nodeId);
    };
    victim.socket.terminate();
    const back = await victim.reconnect();
    t.after(() => back.socket.terminate());
    for (let i = 0; i < 500 && !(await placed("9.96")).includes(victim.nodeId); i++)
      await new Promise((r) => setTimeout(r, 10));
    assert.ok((await placed("9.96")).includes(victim.nodeId), "back, staked 9.96 TDM");
    assert.ok(!(await placed("10")).includes(victim.nodeId), "no longer staked 10 TDM");
    const history = await s.net.client().nodeHistory(victim.nodeId, { limit: 100 });
    assert.deepEqual(
      history.items.filter((h) => h.action === "stake-slashed").map((h) => h.detail.amount),
      ["0.040000"],
    );
    // The consumer's wallet got the whole hour (plus, at the end, the refund of its escrow).
    assert.equal((await s.costs(cluster.id)).slashCompensation, "0.020000");
    const walletAfter = (await s.client.wallet()).balances.find((b) => b.currency === "USDC")!;
    assert.ok(Number(walletAfter.wallet) >= Number(walletBefore.wallet) + 0.02);
    assert.equal((await s.net.client(s.net.adminKey).ledgerAudit()).ok, true);
  });

  it("a node staked too little pays from its stake first and its supplier's earnings the rest", async (t) => {
    const s = await simulatedNetwork(db, t, 2, { pricingMode: "market" });
    await staked(s, "1", "20"); // 1 TDM = 0.5 USDC of stake per node
    for (const worker of s.pool) await s.supplier.client.setNodePrice(worker.nodeId, "4");
    // Placement reads the new price once the inventory has refreshed the nodes (in the background).
    for (let i = 0; i < 500; i++) {
      const { offers } = await s.client.search({ nodes: 2, gpuModel: "cpu" });
      if (offers.length === 2 && offers.every((o) => o.pricePerHour === "4.000000")) break;
      await new Promise((r) => setTimeout(r, 10));
    }
    const cluster = await running(s);
    const victim = s.roleOf(cluster, 0);
    // An hour served at 4 USDC/h: the lost lease pays 3.97 net to the supplier before the slash.
    s.clock.advance(60 * MINUTE);
    await s.silence(victim);

    const slashed = await slashedEvent(s, cluster.id);
    assert.deepEqual(
      [slashed.owed, slashed.taken, slashed.fromStake, slashed.fromEarnings, slashed.shortfall],
      ["4.000000", "4.000000", "0.500000", "3.500000", "0.000000"],
    );
    assert.equal(await stakeOf(s, victim.nodeId), "0.000000");
    const earnings = (await s.supplier.client.wallet()).balances.find((b) => b.currency === "USDC");
    assert.equal(earnings?.earnings, "0.470000", "3.97 earned less 3.5 forfeited");
    assert.equal((await s.costs(cluster.id)).slashCompensation, "4.000000");
    assert.equal((await s.net.client(s.net.adminKey).ledgerAudit()).ok, true);
  });

  for (const fault of [
    {
      end: "image-missing",
      exit: {
        exitCode: null,
        error: "image localhost/absent:1 is not on this node",
        startFailure: "image-missing",
      },
    },
    {
      end: "invalid-job",
      exit: { exitCode: null, error: "command is empty", startFailure: "invalid-job" },
    },
    { end: "exit-nonzero", exit: { exitCode: 3, error: null } },
  ]) {
    it(`a consumer's fault (${fault.end}) on a staked node slashes nothing`, async (t) => {
      const s = await simulatedNetwork(db, t, 2);
      await staked(s, "10");
      const cluster = await running(s);
      const node = s.roleOf(cluster, 0);
      s.clock.advance(MINUTE);
      node.send({
        type: "job-exit",
        clusterId: cluster.id,
        rank: 0,
        attempt: 0,
        signal: null,
        ...fault.exit,
      });
      const view = await s.until(cluster.id, (v) => v.status === "failed", "failed");
      assert.ok(!view.events.some((e) => e.type === "slashed" || e.type === "failover"));
      assert.equal((await s.costs(cluster.id)).slashCompensation, "0.000000");
      for (const worker of s.pool) assert.equal(await stakeOf(s, worker.nodeId), "10.000000");
      const history = await s.net.client().nodeHistory(node.nodeId, { limit: 100 });
      assert.ok(!history.items.some((h) => h.action === "stake-slashed"));
    });
  }
});
