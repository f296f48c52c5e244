// Placement by stake (issue 16 item 6, placement part), on SQLite and PostgreSQL with simulated
// workers: search, quote and deploy accept `minStake` (TDM actively staked on a node), the funnel
// says how many nodes too little stake removed, a stake made, unstaked or withdrawn moves a node in
// or out at once, and a bad amount is a typed 400 that changes nothing.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { assertError, forEachDatabase, httpRequest } from "./support/coordinator.ts";
import {
  SQLITE_ONLY,
  consumerCli,
  simulatedNetwork,
  type SimulatedNetwork,
} from "./support/simulated-network.ts";

/** Search results once the inventory has taken in a stake change (refreshed on its event). */
async function searchUntil(
  s: SimulatedNetwork,
  request: Parameters<SimulatedNetwork["client"]["search"]>[0],
  ready: (r: Awaited<ReturnType<SimulatedNetwork["client"]["search"]>>) => boolean,
) {
  let result = await s.client.search(request);
  for (let i = 0; i < 500 && !ready(result); i++) {
    await new Promise((r) => setTimeout(r, 10));
    result = await s.client.search(request);
  }
  return result;
}

forEachDatabase("placement by stake", (db) => {
  it("search, quote and deploy place only on nodes staked at least minStake, naming the step", async (t) => {
    const s = await simulatedNetwork(db, t, 2);
    const admin = s.net.client(s.net.adminKey);
    await admin.deposit({ accountId: s.supplier.accountId, currency: "TDM", amount: "100" });
    const staked = s.pool[1]!;
    const position = await s.supplier.client.stake({ nodeId: staked.nodeId, amount: "10" });

    const search = await searchUntil(
      s,
      { nodes: 1, gpuModel: "cpu", minStake: "10" },
      (r) => r.satisfiable,
    );
    assert.deepEqual(
      search.offers.map((o) => o.nodeId),
      [staked.nodeId],
    );
    const both = await s.client.search({ nodes: 2, gpuModel: "cpu", minStake: "10" });
    assert.equal(both.satisfiable, false);
    assert.match(both.explanation, /stake ≥ 10\.000000 TDM: 1 \(need 2\)/);
    assert.deepEqual(
      both.funnel.map((f) => [f.filter, f.remaining]),
      [
        ["available", 2],
        ["cpu-only", 2],
        ["stake ≥ 10.000000 TDM", 1],
      ],
    );
    const quote = await httpRequest(s.net.url, "POST", "/v1/quotes", {
      apiKey: s.consumer.apiKey,
      body: { nodes: 1, gpuModel: "cpu", hours: 1, minStake: "10.000001" },
    });
    assert.match(assertError(quote, 409, "NO_CAPACITY").message, /stake ≥ 10\.000001 TDM: 0/);
    const bad = await httpRequest(s.net.url, "POST", "/v1/search", {
      apiKey: s.consumer.apiKey,
      body: { nodes: 1, minStake: "-1" },
    });
    assertError(bad, 400, "INVALID_AMOUNT");
    assert.equal(
      (await s.client.wallet()).balances.find((b) => b.currency === "USDC")?.wallet,
      "10.000000",
      "nothing charged",
    );

    const cluster = await s.client.deployCluster({
      kind: "batch",
      nodes: 1,
      hours: 1,
      gpuModel: "cpu",
      minStake: "10",
      command: ["true"],
    });
    assert.equal(s.roleOf(cluster, 0), staked, "only the staked node qualifies");
    await s.client.terminateCluster(cluster.id);

    // Unstaked, the stake no longer counts: the node drops out.
    await s.supplier.client.unstake(position.id);
    const after = await searchUntil(
      s,
      { nodes: 1, gpuModel: "cpu", minStake: "10" },
      (r) => !r.satisfiable,
    );
    assert.equal(after.satisfiable, false, "unbonding stake may leave mid-lease: not counted");
  });
});

// The CLI only reads the API, so one database (SQLite) is enough for it.
describe("the CLI with --min-stake", () => {
  it("`search --min-stake` and `cluster quote --min-stake` exit 2 with the stake's funnel line", async (t) => {
    const s = await simulatedNetwork(SQLITE_ONLY, t, 1);
    const tandem = await consumerCli(s, t);
    const search = await tandem(["search", "--gpu", "cpu", "--min-stake", "1"]);
    assert.equal(search.code, 2, search.out);
    assert.match(search.out, /^ *stake ≥ 1\.000000 TDM +0$/m);
    const quote = await tandem(["cluster", "quote", "--hours", "1", "--min-stake", "1"]);
    assert.equal(quote.code, 2, quote.out);
    assert.match(quote.out, /^ *stake ≥ 1\.000000 TDM +0$/m);
    assert.equal((await tandem(["search", "--gpu", "cpu"])).code, 0, "no stake asked");
  });
});
