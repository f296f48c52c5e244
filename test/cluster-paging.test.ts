// Every list pages (issue 20): `GET /v1/clusters` takes `?limit=` (1-200, default 50) and a
// `cursor`, and its `nextCursor` leads through every cluster once; the CLI's `cluster list`
// follows it with `--all` (the real CLI as a child process; on SQLite only, as it reads the API).
import assert from "node:assert/strict";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { it } from "node:test";
import { assertError, forEachDatabase, httpRequest } from "./support/coordinator.ts";
import { spawnTandem } from "./support/processes.ts";
import { simulatedNetwork } from "./support/simulated-network.ts";

const CLUSTERS = 5;

forEachDatabase("cluster list paging", (db) => {
  it("a consumer with more clusters than a page sees each once, newest first", async (t) => {
    const s = await simulatedNetwork(db, t, 1);
    const ids: string[] = [];
    for (let i = 0; i < CLUSTERS; i++) {
      const cluster = await s.client.deployCluster({
        nodes: 1,
        hours: 1,
        gpuModel: "cpu",
        kind: "batch",
        command: ["true"],
      });
      await s.client.terminateCluster(cluster.id);
      ids.push(cluster.id);
      s.clock.advance(1000);
    }
    const newestFirst = [...ids].reverse();

    const seen: string[] = [];
    let cursor: string | undefined;
    let pages = 0;
    do {
      const page = await s.client.listClusters({ limit: 2, ...(cursor ? { cursor } : {}) });
      assert.ok(page.items.length <= 2);
      seen.push(...page.items.map((c) => c.id));
      cursor = page.nextCursor ?? undefined;
      pages += 1;
    } while (cursor !== undefined);
    assert.deepEqual(seen, newestFirst);
    assert.equal(pages, 3);

    const all = await s.client.listClusters();
    assert.deepEqual(
      [all.items.length, all.nextCursor],
      [CLUSTERS, null],
      "the default page (50) holds them all",
    );
    const exact = await s.client.listClusters({ limit: CLUSTERS });
    assert.equal(exact.nextCursor, null, "no cursor past the last cluster");

    const others = await s.net.signUp(["consumer"]);
    assert.deepEqual((await others.client.listClusters()).items, [], "only the caller's clusters");

    const get = (query: string) =>
      httpRequest(s.net.url, "GET", `/v1/clusters${query}`, { apiKey: s.consumer.apiKey });
    for (const query of ["?limit=0", "?limit=201", "?limit=x", "?cursor=nope", "?after=1"])
      assertError(await get(query), 400, "VALIDATION_FAILED", query);

    if (db.kind !== "sqlite") return;
    const home = await mkdtemp(join(tmpdir(), "tandem-cli-"));
    t.after(() => rm(home, { recursive: true, force: true }));
    const env = { TANDEM_URL: s.net.url, TANDEM_API_KEY: s.consumer.apiKey, TANDEM_HOME: home };
    const followed = spawnTandem(["cluster", "list", "--all", "--limit", "2", "--json"], env);
    assert.equal(await followed.exited, 0, followed.stderr.join("\n"));
    const list = JSON.parse(followed.stdout.join("\n")) as {
      items: Array<{ id: string }>;
      nextCursor: string | null;
    };
    assert.deepEqual([list.items.map((c) => c.id), list.nextCursor], [newestFirst, null]);
    const first = spawnTandem(["cluster", "list", "--limit", "2"], env);
    assert.equal(await first.exited, 0, first.stderr.join("\n"));
    assert.match(
      first.stdout.join("\n"),
      new RegExp(`more: tandem cluster list --cursor ${ids[3]}`),
    );
  });
});
