// Engines each worker can run (issue 20 item 4), with simulated workers over real WebSockets: a
// worker's hardware report lists the engines it found (torch, dask, ray, podman); search, quote and
// deploy of a kind filter on its engine before anything is charged, the funnel line saying how
// many nodes were left; a report without the field (a worker from before it) is still placed.
import assert from "node:assert/strict";
import { chmod, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, it } from "node:test";
import { startWorker } from "../src/worker/main.ts";
import { assertError, forEachDatabase, httpRequest } from "./support/coordinator.ts";
import { fixtureHardware } from "./support/devices.ts";
import { SQLITE_ONLY, consumerCli, simulatedNetwork } from "./support/simulated-network.ts";
import type { DeployRequest } from "../src/protocol/clusters.ts";

const cpuDeploy = (kind: DeployRequest["kind"]): DeployRequest => ({
  kind,
  nodes: 1,
  hours: 1,
  gpuModel: "cpu",
  command: ["python3", "-c", "pass"],
});

forEachDatabase("engines", (db) => {
  it("refuses search, quote and deploy of --kind ray where no node has Ray, naming the engine in the funnel, and charges nothing", async (t) => {
    const s = await simulatedNetwork(db, t, 2, {}, [], [], [], [["torch", "dask"], ["torch"]]);
    const deploy = await httpRequest(s.net.url, "POST", "/v1/clusters", {
      apiKey: s.consumer.apiKey,
      body: cpuDeploy("ray"),
    });
    const error = assertError(deploy, 409, "NO_CAPACITY");
    assert.match(error.message, /cpu-only: 2 → engine ray: 0 \(need 1\)/);
    const search = await s.client.search({ nodes: 1, gpuModel: "cpu", kind: "ray" });
    assert.equal(search.satisfiable, false);
    assert.deepEqual(
      search.funnel.map((f) => [f.filter, f.remaining]),
      [
        ["available", 2],
        ["cpu-only", 2],
        ["engine ray", 0],
      ],
    );
    const dask = await s.client.search({ nodes: 2, gpuModel: "cpu", kind: "dask" });
    assert.equal(dask.satisfiable, false, "one of the two has dask");
    assert.match(dask.explanation, /engine dask: 1 \(need 2\)/);
    const quote = await httpRequest(s.net.url, "POST", "/v1/quotes", {
      apiKey: s.consumer.apiKey,
      body: { nodes: 1, gpuModel: "cpu", hours: 1, kind: "ray" },
    });
    assert.match(assertError(quote, 409, "NO_CAPACITY").message, /engine ray: 0/);
    const badKind = await httpRequest(s.net.url, "POST", "/v1/search", {
      apiKey: s.consumer.apiKey,
      body: { nodes: 1, kind: "spark" },
    });
    assertError(badKind, 400, "VALIDATION_FAILED");
    const wallet = await s.client.wallet();
    assert.equal(wallet.balances.find((b) => b.currency === "USDC")?.wallet, "10.000000");
    assert.equal((await s.client.listClusters()).items.length, 0, "no cluster was made");
    // batch needs no engine; torch is on both nodes.
    assert.equal((await s.client.search({ nodes: 2, kind: "batch" })).satisfiable, true);
    assert.equal((await s.client.search({ nodes: 2, kind: "torch" })).satisfiable, true);
  });

  it("places a kind on the node that has its engine", async (t) => {
    const s = await simulatedNetwork(db, t, 2, {}, [], [], [], [["torch"], ["torch", "ray"]]);
    const cluster = await s.client.deployCluster(cpuDeploy("ray"));
    assert.equal(s.roleOf(cluster, 0), s.pool[1], "only the second node has Ray");
    const node = await s.client.getNode(s.pool[1]!.nodeId);
    assert.deepEqual(node.engines, ["torch", "ray"]);
  });

  it("still places on a node whose report names no engines (a worker from before them)", async (t) => {
    const s = await simulatedNetwork(db, t, 2, {}, [], [], [], [["torch"], undefined]);
    const search = await s.client.search({ nodes: 1, gpuModel: "cpu", kind: "ray" });
    assert.equal(search.satisfiable, true);
    assert.equal(search.offers[0]?.nodeId, s.pool[1]!.nodeId);
    const cluster = await s.client.deployCluster(cpuDeploy("ray"));
    assert.equal(s.roleOf(cluster, 0), s.pool[1], "the older worker is assumed able, as before");
    assert.equal((await s.client.getNode(s.pool[1]!.nodeId)).engines, null);
  });

  it("a real worker asks its configured python once at start and registers what it found", async (t) => {
    const home = await mkdtemp(join(tmpdir(), "tandem-engines-"));
    t.after(() => rm(home, { recursive: true, force: true }));
    // A python that finds Ray and torch only, and counts how often it is asked.
    const python = join(home, "python");
    await writeFile(python, `#!/bin/sh\necho x >> "${home}/asked"\necho '["torch", "ray"]'\n`);
    await chmod(python, 0o755);
    const tc = await db.startCoordinator();
    t.after(() => tc.close());
    const supplier = await tc.signUp(["supplier"]);
    const hardware = await fixtureHardware("none");
    const worker = await startWorker(
      {
        home: join(home, "worker"),
        coordinatorUrl: tc.url,
        region: "eu-west",
        zone: "eu-west-a",
        enrollmentToken: (await supplier.client.createEnrollmentToken()).token,
        python,
        containers: false,
      },
      { probe: { probe: () => Promise.resolve(hardware) }, log: () => undefined },
    );
    t.after(() => worker.stop());
    assert.deepEqual((await tc.client().getNode(worker.nodeId)).engines, ["torch", "ray"]);
    assert.equal(await readFile(join(home, "asked"), "utf8"), "x\n", "asked once");
  });
});

// The CLI only reads the API, so one database (SQLite) is enough for it.
describe("the CLI with engines", () => {
  it("`search --kind ray` and `cluster quote --kind ray` exit 2 with the engine's funnel line; `nodes show` lists engines", async (t) => {
    const s = await simulatedNetwork(SQLITE_ONLY, t, 1, {}, [], [], [], [["torch", "dask"]]);
    const tandem = await consumerCli(s, t);
    const search = await tandem(["search", "--gpu", "cpu", "--kind", "ray"]);
    assert.equal(search.code, 2, search.out);
    assert.match(search.out, /^ *engine ray +0$/m);
    const quote = await tandem(["cluster", "quote", "--hours", "1", "--kind", "ray"]);
    assert.equal(quote.code, 2, quote.out);
    assert.match(quote.out, /^ *engine ray +0$/m);
    assert.equal((await tandem(["search", "--kind", "dask"])).code, 0);
    const show = await tandem(["nodes", "show", s.pool[0]!.nodeId]);
    assert.match(show.out, /engines: +torch, dask/);
  });
});
