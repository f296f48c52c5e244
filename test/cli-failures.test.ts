// Failures that say why (issue 20): the real `tandem` CLI, as a child process, against a real
// coordinator whose workers are simulated over real WebSockets (they do only what the test says).
// A search or deploy that nothing fits exits 2 with the placement funnel; a deploy whose cluster
// fails exits 3 with the reason and the refund; `cluster show` says both for an ended cluster.
// The CLI only reads the API here, so one database (SQLite) is enough for it.
import assert from "node:assert/strict";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { spawnTandem } from "./support/processes.ts";
import { SQLITE_ONLY, simulatedNetwork } from "./support/simulated-network.ts";

let home: string;
before(async () => (home = await mkdtemp(join(tmpdir(), "tandem-cli-"))));
after(() => rm(home, { recursive: true, force: true }));

/** `tandem args…` as `apiKey` on `url`: its exit status and output. */
async function tandem(url: string, apiKey: string, args: string[]) {
  const cli = spawnTandem(args, { TANDEM_URL: url, TANDEM_API_KEY: apiKey, TANDEM_HOME: home });
  const code = await cli.exited;
  return { code, stdout: cli.stdout.join("\n"), stderr: cli.stderr.join("\n") };
}

describe("a CLI whose request fails says why", () => {
  it("a search or deploy that nothing fits exits 2 and prints the funnel", async (t) => {
    const s = await simulatedNetwork(SQLITE_ONLY, t, 1);
    const filters = ["--gpu", "cpu", "--nodes", "2", "--currency", "USDC"];
    const search = await tandem(s.net.url, s.consumer.apiKey, ["search", ...filters]);
    assert.equal(search.code, 2, search.stderr);
    assert.match(search.stdout, /cannot place 2 node\(s\)/);
    assert.match(search.stdout, /FILTER +NODES LEFT\n +available +1\n/);
    const json = await tandem(s.net.url, s.consumer.apiKey, ["search", "--json", ...filters]);
    assert.equal(json.code, 2);
    assert.equal((JSON.parse(json.stdout) as { satisfiable: boolean }).satisfiable, false);

    const deploy = await tandem(s.net.url, s.consumer.apiKey, [
      ...["cluster", "deploy", "--kind", "batch", "--hours", "1", ...filters, "--", "true"],
    ]);
    assert.equal(deploy.code, 2, deploy.stderr);
    assert.match(deploy.stderr, /NO_CAPACITY/);
    assert.match(deploy.stderr, /FILTER +NODES LEFT\n +available +1\n/);
    assert.deepEqual((await s.client.listClusters()).items, [], "nothing was deployed");
    const quote = await tandem(s.net.url, s.consumer.apiKey, [
      ...["cluster", "quote", "--hours", "1", ...filters],
    ]);
    assert.equal(quote.code, 2, quote.stderr);
    assert.match(quote.stderr, /FILTER +NODES LEFT\n +available +1\n/);

    const fits = await tandem(s.net.url, s.consumer.apiKey, ["search", "--gpu", "cpu"]);
    assert.equal(fits.code, 0, fits.stderr);
  });

  it("a deploy whose cluster fails exits 3 with the reason and the refund; show says both", async (t) => {
    const s = await simulatedNetwork(SQLITE_ONLY, t, 1);
    const cli = spawnTandem(
      ["cluster", "deploy", "--kind", "batch", "--hours", "1", "--gpu", "cpu", "--", "ray", "x"],
      { TANDEM_URL: s.net.url, TANDEM_API_KEY: s.consumer.apiKey, TANDEM_HOME: home },
    );
    const worker = s.pool[0]!;
    const start = await s.nextStart(worker);
    worker.send({
      type: "job-exit",
      clusterId: start.clusterId,
      rank: 0,
      attempt: start.attempt,
      exitCode: 127,
      signal: null,
      error: "ray: command not found",
    });
    assert.equal(await cli.exited, 3, cli.stderr.join("\n"));
    const out = cli.stdout.join("\n");
    assert.match(out, new RegExp(`cluster ${start.clusterId} is failed`));
    assert.match(out, /reason: +rank 0 failed \(rank 0: exit 127, ray: command not found\)/);
    assert.match(out, /refunded: +[\d.]+ USDC of [\d.]+ USDC charged/);
    const refunded = (await s.costs(start.clusterId)).refunded!;
    assert.ok(Number(refunded) > 0, "a cluster that never ran is refunded");
    assert.match(out, new RegExp(`refunded: +${refunded.replace(".", "\\.")} USDC`));

    const show = await tandem(s.net.url, s.consumer.apiKey, ["cluster", "show", start.clusterId]);
    assert.equal(show.code, 0, show.stderr);
    assert.match(show.stdout, /status: +failed/);
    assert.match(show.stdout, /reason: +rank 0 failed \(rank 0: exit 127/);
    assert.match(show.stdout, new RegExp(`refunded: +${refunded.replace(".", "\\.")} USDC`));
  });
});
