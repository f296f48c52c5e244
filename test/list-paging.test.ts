// Every list pages (issue 20): `GET /v1/clusters`, a cluster's tasks, the caller's API keys and
// enrollment tokens take `?limit=` (1-200, default 50) and a `cursor`, and `nextCursor` leads
// through every item once; the CLI's list commands take `--limit`, print a "more" hint and follow
// the cursor with `--all` (the real CLI as a child process; on SQLite only, as it reads the API).
import assert from "node:assert/strict";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { it } from "node:test";
import { assertError, forEachDatabase, httpRequest } from "./support/coordinator.ts";
import { spawnTandem } from "./support/processes.ts";
import { consumerCli, simulatedNetwork } from "./support/simulated-network.ts";

const CLUSTERS = 5;

/** Every page of a list from the first, following `nextCursor`: each page's size and all items. */
async function walk<T>(
  fetch: (cursor: string | undefined) => Promise<{ items: T[]; nextCursor: string | null }>,
) {
  const sizes: number[] = [];
  const items: T[] = [];
  let cursor: string | undefined;
  do {
    const page = await fetch(cursor);
    sizes.push(page.items.length);
    items.push(...page.items);
    cursor = page.nextCursor ?? undefined;
    assert.ok(sizes.length <= 100, "the cursor never ended");
  } while (cursor !== undefined);
  return { sizes, items };
}

/** Each query is refused with the typed 400, as every list refuses a bad limit or cursor. */
async function assertRefused(url: string, path: string, apiKey: string, queries: string[]) {
  for (const query of queries)
    assertError(
      await httpRequest(url, "GET", `${path}${query}`, { apiKey }),
      400,
      "VALIDATION_FAILED",
      query,
    );
}

const BAD_LIMITS = ["?limit=0", "?limit=201", "?limit=x", "?limit=1.5", "?after=1"];

forEachDatabase("list paging", (db) => {
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

    const { sizes, items } = await walk((cursor) =>
      s.client.listClusters({ limit: 2, ...(cursor ? { cursor } : {}) }),
    );
    assert.deepEqual(
      items.map((c) => c.id),
      newestFirst,
    );
    assert.deepEqual(sizes, [2, 2, 1]);

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

    await assertRefused(s.net.url, "/v1/clusters", s.consumer.apiKey, [
      ...BAD_LIMITS,
      "?cursor=nope",
    ]);

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

  it("a queue of 60 tasks pages 25/25/10 in seq order, each task once", async (t) => {
    const s = await simulatedNetwork(db, t, 1);
    const cluster = await s.client.deployCluster({
      kind: "batch",
      nodes: 1,
      hours: 1,
      gpuModel: "cpu",
      command: ["true"],
      autoscale: { min: 1, max: 1, tasksPerNode: 1 },
    });
    const commands = Array.from({ length: 59 }, (_, i) => ["echo", String(i)]);
    const batch = await s.client.submitTasks(cluster.id, commands);

    const { sizes, items } = await walk((cursor) =>
      s.client.clusterTasks(cluster.id, { limit: 25, ...(cursor ? { cursor } : {}) }),
    );
    assert.deepEqual(sizes, [25, 25, 10]);
    const seqs = items.map((task) => task.seq);
    const first = seqs[0]!;
    assert.deepEqual(
      seqs,
      Array.from({ length: 60 }, (_, i) => first + i),
      "no duplicates, no gaps",
    );
    assert.equal(seqs.at(-1), batch.lastSeq);
    assert.deepEqual(items.at(-1)!.command, ["echo", "58"]);

    const plain = await s.client.clusterTasks(cluster.id);
    assert.deepEqual(
      [plain.items.length, plain.nextCursor],
      [50, String(first + 49)],
      "no query: the first 50",
    );
    const exact = await s.client.clusterTasks(cluster.id, { limit: 60 });
    assert.equal(exact.nextCursor, null, "no cursor past the last task");

    await assertRefused(s.net.url, `/v1/clusters/${cluster.id}/tasks`, s.consumer.apiKey, [
      ...BAD_LIMITS,
      "?cursor=x",
      "?cursor=-1",
      "?cursor=1e3",
      "?cursor=99999999999",
    ]);

    if (db.kind !== "sqlite") return;
    const cli = await consumerCli(s, t);
    const page = await cli(["cluster", "tasks", cluster.id, "--limit", "25"]);
    assert.equal(page.code, 0, page.out);
    assert.match(
      page.out,
      new RegExp(`more: tandem cluster tasks ${cluster.id} --cursor ${first + 24} `),
    );
    assert.match(page.out, /echo 23\n/);
    assert.doesNotMatch(page.out, /echo 24\n/);
    const all = await cli(["cluster", "tasks", cluster.id, "--limit", "25", "--all", "--json"]);
    assert.equal(all.code, 0, all.out);
    const list = JSON.parse(all.out) as { items: Array<{ seq: number }>; nextCursor: null };
    assert.deepEqual([list.items.map((task) => task.seq), list.nextCursor], [seqs, null]);
  });

  it("API keys page oldest first; enrollment tokens newest first", async (t) => {
    const s = await simulatedNetwork(db, t, 1);
    const keyIds = [(await s.client.listApiKeys()).items[0]!.id];
    for (let i = 0; i < 4; i++) {
      s.clock.advance(1000);
      keyIds.push((await s.client.createApiKey()).apiKeyId);
    }
    const keys = await walk((cursor) =>
      s.client.listApiKeys({ limit: 2, ...(cursor ? { cursor } : {}) }),
    );
    assert.deepEqual(keys.sizes, [2, 2, 1]);
    assert.deepEqual(
      keys.items.map((k) => k.id),
      keyIds,
    );
    assert.equal((await s.client.listApiKeys()).nextCursor, null, "no query: all five, one page");

    const supplier = s.supplier.client;
    const tokenIds: string[] = [];
    for (let i = 0; i < 5; i++) {
      s.clock.advance(1000);
      tokenIds.unshift((await supplier.createEnrollmentToken()).tokenId);
    }
    const tokens = await walk((cursor) =>
      supplier.listEnrollmentTokens({ limit: 2, ...(cursor ? { cursor } : {}) }),
    );
    assert.deepEqual(tokens.sizes, [2, 2, 1]);
    assert.deepEqual(
      tokens.items.map((k) => k.tokenId),
      tokenIds,
    );
    assert.equal((await supplier.listEnrollmentTokens()).items.length, 5, "no query: one page");

    await assertRefused(s.net.url, "/v1/api-keys", s.consumer.apiKey, [
      ...BAD_LIMITS,
      "?cursor=nope",
      `?cursor=${tokenIds[0]}`,
    ]);
    await assertRefused(s.net.url, "/v1/enrollment-tokens", s.supplier.apiKey, [
      ...BAD_LIMITS,
      "?cursor=nope",
      `?cursor=${keyIds[0]}`,
    ]);

    if (db.kind !== "sqlite") return;
    const cli = await consumerCli(s, t);
    const keyPage = await cli(["keys", "list", "--limit", "2"]);
    assert.equal(keyPage.code, 0, keyPage.out);
    assert.match(keyPage.out, new RegExp(`more: tandem keys list --cursor ${keyIds[1]} `));
    assert.doesNotMatch(keyPage.out, new RegExp(keyIds[2]!));

    const home = await mkdtemp(join(tmpdir(), "tandem-cli-"));
    t.after(() => rm(home, { recursive: true, force: true }));
    const env = { TANDEM_URL: s.net.url, TANDEM_API_KEY: s.supplier.apiKey, TANDEM_HOME: home };
    const tokenPage = spawnTandem(["worker", "enroll-tokens", "--limit", "2"], env);
    assert.equal(await tokenPage.exited, 0, tokenPage.stderr.join("\n"));
    const out = tokenPage.stdout.join("\n");
    assert.match(out, new RegExp(`more: tandem worker enroll-tokens --cursor ${tokenIds[1]} `));
    assert.doesNotMatch(out, new RegExp(tokenIds[2]!));
  });
});
