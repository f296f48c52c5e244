// The explorer as a visitor sees it: a real Chromium (playwright-core driving Debian's chromium)
// against a real coordinator serving the built explorer and two real worker processes (GPUs seen
// through fixture nvidia-smi scripts, since this machine has none). The visitor reads the overview,
// filters the node table, opens a node page, and watches that node go offline live when its worker
// is killed with SIGKILL. Screenshots land in test-artifacts/explorer/ (not committed).
import assert from "node:assert/strict";
import { access, mkdir, mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { after, before, describe, it } from "node:test";
import Fastify from "fastify";
import {
  serializerCompiler,
  validatorCompiler,
  type ZodTypeProvider,
} from "fastify-type-provider-zod";
import type { BrowserContext, Page } from "playwright-core";
import { TandemClient } from "../src/client/client.ts";
import { errorHandler, notFoundHandler } from "../src/coordinator/api/http-errors.ts";
import { explorerRoutes } from "../src/coordinator/api/routes/explorer.ts";
import { ensureExplorerBuilt } from "../web/build.ts";
import { proofOf } from "../web/src/components/proof-record.tsx";
import {
  GPU_PROVER_FIXTURE,
  NVIDIA_SMI_FIXTURES,
  eventually,
  spawnTandem,
  type TandemProcess,
  SMALL_PROOF_FLAGS,
} from "./support/processes.ts";
import { CHROMIUM, openChromium } from "./support/chromium.ts";
import { enrollmentEnv } from "./support/workers.ts";

/** Short, for a quick offline verdict, but not so short that a busy 2-core CI machine flaps. */
const HEARTBEAT_MS = 1000;
/** The explorer's promise (issue 6): a node going offline shows within 2 s, without a reload. */
const LIVE_BUDGET_MS = 2000;
const ARTIFACTS = fileURLToPath(new URL("../test-artifacts/explorer/", import.meta.url));

const noBrowser = await access(CHROMIUM).then(
  () => false as const,
  () => `no Chromium at ${CHROMIUM} (apt-get install chromium)`,
);
if (noBrowser !== false) {
  if (process.env.TANDEM_REQUIRE_BROWSER === "1")
    throw new Error(`TANDEM_REQUIRE_BROWSER=1 but ${noBrowser}`);
  process.stderr.write(`explorer e2e skipped: ${noBrowser}\n`);
}

describe("the explorer in a browser", { skip: noBrowser }, () => {
  const processes: TandemProcess[] = [];
  let home: string;
  let url: string;
  let browser: Awaited<ReturnType<typeof openChromium>> | undefined;
  let context: BrowserContext | undefined;
  let page: Page;
  let gpuWorker: TandemProcess;
  let gpuNodeId: string;
  let hgxNodeId: string;
  const browserErrors: string[] = [];
  /** The browser logs a refused request itself: drop the one a case provoked on purpose. */
  const expectedBrowserError = (text: string) => {
    const index = browserErrors.findIndex((e) => e.includes(text));
    assert.ok(index >= 0, `the browser logged ${text}`);
    browserErrors.splice(index, 1);
  };

  before(async () => {
    await ensureExplorerBuilt();
    await mkdir(ARTIFACTS, { recursive: true });
    home = await mkdtemp(join(tmpdir(), "tandem-explorer-"));
    const coordinator = spawnTandem(
      [
        "coordinator",
        ...SMALL_PROOF_FLAGS,
        "--port",
        "0",
        "--json",
        "--log-level",
        "warn",
        "--heartbeat-interval-ms",
        String(HEARTBEAT_MS),
      ],
      { TANDEM_HOME: join(home, "coordinator") },
    );
    processes.push(coordinator);
    url = (JSON.parse(await coordinator.line(/^\{/)) as { url: string }).url;
    const supplier = await new TandemClient({ baseUrl: url }).createAccount({
      roles: ["supplier"],
    });
    const startWorker = async (name: string, zone: string, fixture: string) => {
      const worker = spawnTandem(
        [
          "worker",
          "start",
          "--json",
          "--region",
          "eu-west",
          "--zone",
          zone,
          "--nvidia-smi",
          join(NVIDIA_SMI_FIXTURES, fixture, "nvidia-smi"),
          ...["--gpu-prover", GPU_PROVER_FIXTURE],
        ],
        { TANDEM_HOME: join(home, name), ...(await enrollmentEnv(url, supplier.apiKey)) },
      );
      processes.push(worker);
      return worker;
    };
    gpuWorker = await startWorker("w1", "eu-west-a", "rtx4090");
    const hgxWorker = await startWorker("w2", "eu-west-b", "h100x8");
    gpuNodeId = (JSON.parse(await gpuWorker.line(/^\{/)) as { nodeId: string }).nodeId;
    hgxNodeId = (JSON.parse(await hgxWorker.line(/^\{/)) as { nodeId: string }).nodeId;
    const publicApi = new TandemClient({ baseUrl: url });
    await eventually(async () => {
      const stats = await publicApi.networkStats();
      return stats.nodes.online === 2 ? stats : undefined;
    }, "both workers online").catch((error: unknown) => {
      const logs = processes.map((p, i) => `process ${i} stderr:\n${p.stderr.join("\n")}`);
      throw new Error(`${String(error)}\n${logs.join("\n")}`, { cause: error });
    });

    browser = await openChromium(browserErrors);
    ({ context, page } = browser);
  });

  after(async () => {
    await browser?.close();
    await Promise.all(processes.map((p) => p.kill("SIGKILL")));
    await rm(home, { recursive: true, force: true });
  });

  it("shows the network at a glance on the overview", async () => {
    await page.goto(`${url}/`);
    await page.getByTestId("live-status").filter({ hasText: "Live" }).waitFor();
    await page.getByTestId("nodes-online").filter({ hasText: "2" }).waitFor();
    assert.equal(await page.getByTestId("gpus-online").textContent(), "9");
    // Verified of connected, as the coordinator counts them (the fixture cards' proofs decide;
    // the page follows live changes, so it may show a figure from before a proof at first).
    const publicApi = new TandemClient({ baseUrl: url });
    await eventuallyTrue(async () => {
      const { nodes, gpus } = await publicApi.networkStats();
      return (
        (await page.getByTestId("gpus-verified").textContent()) === String(gpus.verified) &&
        (await page.getByTestId("nodes-verified").textContent()) === String(nodes.verified)
      );
    }, "the verified figures of /v1/network/stats");
    const models = page.getByRole("region", { name: "GPUs by model" });
    assert.equal(await models.getByRole("link", { name: "h100-80gb" }).count(), 1);
    assert.equal(await models.getByRole("link", { name: "rtx-4090" }).count(), 1);
    assert.equal(await page.title(), "Overview · Tandem Explorer");
    await page.screenshot({ path: join(ARTIFACTS, "overview-light.png"), fullPage: true });

    await page.getByRole("button", { name: /^Theme: system/ }).click();
    await page.getByRole("button", { name: /^Theme: light/ }).click();
    assert.equal(await page.evaluate(() => document.documentElement.dataset.theme), "dark");
    await page.screenshot({ path: join(ARTIFACTS, "overview-dark.png"), fullPage: true });
    await page.getByRole("button", { name: /^Theme: dark/ }).click();
    assert.equal(await page.evaluate(() => document.documentElement.dataset.theme), undefined);
  });

  it("filters the node table on the server, with the filters in the URL", async () => {
    await page
      .getByRole("navigation", { name: "Main" })
      .getByRole("link", { name: "Nodes" })
      .click();
    const rows = page.getByTestId("nodes-table").locator("tbody tr");
    await rows.nth(1).waitFor();
    assert.equal(await rows.count(), 2);

    await page.getByLabel("GPU model").selectOption("rtx-4090");
    await page.waitForURL(/\/nodes\?gpuModel=rtx-4090$/);
    await eventuallyTrue(async () => (await rows.count()) === 1, "one row for rtx-4090");
    assert.equal(await rows.first().getAttribute("data-node-id"), gpuNodeId);
    await page.screenshot({ path: join(ARTIFACTS, "nodes-filtered.png"), fullPage: true });

    await page.getByLabel("Min VRAM (GiB)").fill("48");
    await page.getByLabel("Min VRAM (GiB)").press("Enter");
    await page.waitForURL(/minVramMiB=49152/);
    await page.getByText("No nodes match these filters.").waitFor();

    await page.goto(`${url}/nodes?minVramMiB=${64 * 1024}&zone=eu-west-b`);
    await rows.first().waitFor();
    assert.equal(await rows.count(), 1);
    assert.equal(await rows.first().getAttribute("data-node-id"), hgxNodeId);
    assert.equal(await page.getByLabel("Zone").inputValue(), "eu-west-b");

    await page.goto(`${url}/nodes?limit=1`);
    await rows.first().waitFor();
    const first = await rows.first().getAttribute("data-node-id");
    await page.getByRole("button", { name: "Next →" }).click();
    await page.waitForURL(/limit=1&cursor=/);
    await eventuallyTrue(
      async () => (await rows.first().getAttribute("data-node-id")) !== first,
      "the second page",
    );
    assert.equal(await page.getByRole("button", { name: "Next →" }).isDisabled(), true);
    await page.getByRole("button", { name: "← Previous" }).click();
    await page.waitForURL(`${url}/nodes?limit=1`);
    await eventuallyTrue(
      async () => (await rows.first().getAttribute("data-node-id")) === first,
      "the first page again",
    );

    await page.goto(`${url}/nodes?sort=gpuModel`);
    await rows.nth(1).waitFor();
    assert.deepEqual(
      await rows.evaluateAll((trs) => trs.map((tr) => tr.getAttribute("data-node-id"))),
      [hgxNodeId, gpuNodeId],
      "h100-80gb sorts before rtx-4090",
    );
    await page.getByLabel("Order").selectOption("desc");
    await page.waitForURL(/\/nodes\?sort=gpuModel&order=desc$/);
    await eventuallyTrue(
      async () => (await rows.first().getAttribute("data-node-id")) === gpuNodeId,
      "rtx-4090 first, descending",
    );
    await page.getByLabel("Sort by").selectOption({ label: "Reputation" });
    await page.waitForURL(/sort=reputation/);
    await page.getByLabel("Sort by").selectOption({ label: "Price" });
    await page.waitForURL(/sort=price/);
    await eventuallyTrue(
      async () =>
        (await rows.getByTestId("row-price").allTextContents()).join(" ") === "$15.92 $0.39",
      "the catalog prices, dearest first (the order is still descending)",
    );

    await page.goto(`${url}/nodes?minUptime=2`);
    await page.getByRole("alert").filter({ hasText: "not valid" }).waitFor();
  });

  it("opens a node page with hardware, location and history", async () => {
    await page.goto(`${url}/nodes?gpuModel=rtx-4090`);
    await page.getByRole("link", { name: gpuNodeId }).click();
    await page.waitForURL(`${url}/nodes/${gpuNodeId}`);
    await page.getByTestId("gpu-table").getByText("NVIDIA GeForce RTX 4090").waitFor();
    await page.getByTestId("history-table").getByText("registered").first().waitFor();
    // Each proof of its hardware in its public history shows as a table per device.
    const history = await new TandemClient({ baseUrl: url }).nodeHistory(gpuNodeId);
    const proofs = history.items.filter((e) => proofOf(e) !== undefined);
    await eventuallyTrue(
      async () => (await page.getByTestId("proof-record").count()) === proofs.length,
      `${proofs.length} proof tables`,
    );
    for (const proof of proofs.map((e) => proofOf(e)!))
      for (const d of proof.devices)
        assert.equal(
          await page
            .locator(`[data-proof-id="${proof.proofId}"] tr[data-device="${d.device}"]`)
            .getAttribute("data-verdict"),
          d.verdict,
        );
    // Every other row reads as words, and nothing is cut off at the right edge.
    await page
      .getByTestId("history-table")
      .locator('tr[data-action="registered"]')
      .getByText(/^Registered as device dev_\w+ in eu-west \/ eu-west-a, 1 × rtx-4090$/)
      .waitFor();
    assert.deepEqual(await clippedHistory(page, true), [], "history cut off at 1280 px");
    assert.doesNotMatch((await page.getByTestId("history-table").textContent()) ?? "", /\{"/);
    assert.equal(await page.getByRole("link", { name: "eu-west-a" }).count(), 1);
    await page.getByTestId("uptime-chart").getByText("1 days recorded: 0 fully online").waitFor();
    assert.equal(await page.getByTestId("uptime-chart").locator("canvas").count(), 1);
    await page.locator('[data-testid="node-status"]:not([data-status="offline"])').waitFor();
    assert.equal(
      await page.evaluate(() => document.activeElement?.tagName),
      "H1",
      "focus moves to the new page's heading",
    );
    await page.screenshot({ path: join(ARTIFACTS, "node-page.png"), fullPage: true });
  });

  it("lists clusters anonymized, shows one starting live, and in full for its owner's key", async () => {
    const anonymous = new TandemClient({ baseUrl: url });
    await page.goto(`${url}/clusters`);
    await page.getByText("No clusters yet.").waitFor();
    assert.equal(
      await page.getByTestId("clusters-active").textContent(),
      "0 running · 0 provisioning · 0 pending",
    );
    await page.screenshot({ path: join(ARTIFACTS, "clusters-empty.png"), fullPage: true });

    const account = await anonymous.createAccount({ roles: ["consumer"] });
    const admin = (await readFile(join(home, "coordinator", "admin.key"), "utf8")).trim();
    await new TandemClient({ baseUrl: url, apiKey: admin }).deposit(
      { accountId: account.accountId, currency: "USDC", amount: "100" },
      "explorer-seed",
    );
    const owner = new TandemClient({ baseUrl: url, apiKey: account.apiKey });
    await eventually(
      async () =>
        (await anonymous.networkStats()).nodes.byStatus.available === 2 ? true : undefined,
      "both nodes verified",
      30_000,
    );
    await page.evaluate(() => {
      const marked = window as unknown as { sameDocument: boolean; runningSeenAtMs?: number };
      marked.sameDocument = true;
      new MutationObserver(() => {
        if (document.querySelector('[data-testid="cluster-status"][data-status="running"]'))
          marked.runningSeenAtMs ??= Date.now();
      }).observe(document.body, { subtree: true, childList: true, attributes: true });
    });
    const deployed = await owner.deployCluster({
      kind: "batch",
      nodes: 1,
      hours: 1,
      gpuModel: "h100-80gb",
      command: ["sleep", "600"],
    });
    const row = page.getByTestId("clusters-table").locator(`tr[data-cluster-id="${deployed.id}"]`);
    await row.locator('[data-testid="cluster-status"][data-status="running"]').waitFor();
    const running = await eventually(async () => {
      const view = await owner.getCluster(deployed.id);
      return view.events.find((e) => e.type === "running");
    }, "the running event");
    const seen = await page.evaluate(() => {
      const marked = window as unknown as { sameDocument?: boolean; runningSeenAtMs?: number };
      return { sameDocument: marked.sameDocument, atMs: marked.runningSeenAtMs };
    });
    assert.equal(seen.sameDocument, true, "the page was not reloaded");
    const latencyMs = seen.atMs! - Date.parse(running.at);
    process.stderr.write(`explorer: cluster running shown ${latencyMs} ms after it started\n`);
    assert.ok(latencyMs < LIVE_BUDGET_MS, `cluster start shown after ${latencyMs} ms`);
    assert.equal(await row.locator("td").nth(4).textContent(), "8 × h100-80gb");
    assert.equal(await row.locator("td").nth(5).textContent(), "eu-west");
    assert.equal(await page.getByText("sleep 600").count(), 0, "no command in the public view");
    await page.screenshot({ path: join(ARTIFACTS, "clusters-public.png"), fullPage: true });

    await page.getByLabel("API key").fill("tdm_not-a-real-key");
    await page.getByRole("button", { name: "Show my clusters" }).click();
    await page.getByRole("alert").filter({ hasText: "refused" }).waitFor();
    expectedBrowserError("401 (Unauthorized)");
    await page.getByRole("button", { name: "Forget the key" }).click();
    await page.getByLabel("API key").fill(account.apiKey);
    await page.getByRole("button", { name: "Show my clusters" }).click();
    await page.getByTestId("owner-clusters").getByText("sleep 600").waitFor();
    assert.equal(
      await page.evaluate(() => window.sessionStorage.getItem("tandem-api-key")),
      account.apiKey,
    );
    assert.equal(await page.evaluate(() => window.localStorage.getItem("tandem-api-key")), null);

    await row.getByRole("link", { name: deployed.id }).click();
    await page.waitForURL(`${url}/clusters/${deployed.id}`);
    await page
      .getByTestId("public-events")
      .locator('li[data-type="running"]')
      .getByText(/^Running, [\d.]+ (ms|s) after the deploy$/)
      .waitFor();
    await page.getByTestId("owner-view").getByText("sleep 600").waitFor();
    await page.getByTestId("owner-costs").waitFor();
    assert.equal(
      await page.getByTestId("owner-nodes").getByRole("link", { name: hgxNodeId }).count(),
      1,
    );
    await page.screenshot({ path: join(ARTIFACTS, "cluster-owner.png"), fullPage: true });

    await page
      .getByTestId("owner-events")
      .locator('li[data-type="reserved"]')
      .getByText(`Reserved 1 node: rank 0 on ${hgxNodeId} (eu-west-b)`, { exact: false })
      .waitFor();
    await assertNoRawEvents(page);

    await owner.terminateCluster(deployed.id);
    await page.locator('[data-testid="cluster-page-status"][data-status="terminated"]').waitFor();
    await assertOutcome(page, owner, deployed.id, /^terminated by account:acct_\w+$/);
    await page.evaluate(() => window.sessionStorage.removeItem("tandem-api-key"));
    await page.goto(`${url}/nodes/${hgxNodeId}`);
    await page
      .getByTestId("lease-outcomes")
      .locator("dd")
      .first()
      .filter({ hasText: "1" })
      .waitFor();
    await page
      .getByRole("region", { name: "Leases and slashes" })
      .getByText("No slashes.")
      .waitFor();
    // Earnings as the ledger has them (a lease of a few seconds may have earned nothing yet).
    const earned = (await anonymous.nodeEarnings(hgxNodeId)).currencies[0];
    const earnings = page.getByRole("region", { name: "Earnings" });
    await (
      earned === undefined
        ? earnings.getByText("has not earned anything yet")
        : earnings.getByTestId(`earnings-${earned.currency}-paidOut`).filter({
            hasText: earned.allTime.paidOut,
          })
    ).waitFor();

    await page.goto(`${url}/clusters/clu_${"0".repeat(26)}`);
    await page.getByRole("alert").filter({ hasText: "There is no cluster" }).waitFor();
    expectedBrowserError("404 (Not Found)");
    await page.goto(`${url}/clusters?status=sleeping`);
    await page.getByRole("alert").filter({ hasText: "not valid" }).waitFor();
    // A cluster that ends before it starts (its secrets never came) says so, and what came back.
    const unstarted = await owner.deployCluster({
      kind: "batch",
      nodes: 1,
      hours: 1,
      gpuModel: "h100-80gb",
      command: ["sleep", "600"],
      secretNames: ["TOKEN"],
    });
    await owner.terminateCluster(unstarted.id);
    await page.goto(`${url}/clusters/${unstarted.id}`);
    await page
      .getByTestId("cluster-started")
      .filter({ hasText: "never: it terminated before it started" })
      .waitFor();
    assert.equal(await page.getByText("not yet").count(), 0);
    await page.evaluate(
      (key) => window.sessionStorage.setItem("tandem-api-key", key),
      account.apiKey,
    );
    await page.reload();
    await assertOutcome(page, owner, unstarted.id, /^terminated by account:acct_\w+$/);
    await page.getByTestId("owner-outcome").getByText("(it never started)").waitFor();

    // A failed cluster says which rank failed how, and what was refunded.
    const failing = await owner.deployCluster({
      kind: "batch",
      nodes: 1,
      hours: 1,
      gpuModel: "h100-80gb",
      command: ["sh", "-c", "exit 3"],
    });
    await page.goto(`${url}/clusters/${failing.id}`);
    await page.locator('[data-testid="cluster-page-status"][data-status="failed"]').waitFor();
    await assertOutcome(
      page,
      owner,
      failing.id,
      /^rank 0 failed: exit code 3 \(the job's own doing, no slash\)$/,
    );
    await page
      .getByTestId("public-events")
      .locator('li[data-type="failed"]')
      .getByText(/^Failed$/)
      .waitFor();
    await assertNoRawEvents(page);
    await page.screenshot({ path: join(ARTIFACTS, "cluster-failed.png"), fullPage: true });
    // The lists say the same: the owner's why, the public's "never" for the one never started.
    await page.goto(`${url}/clusters`);
    await page
      .getByTestId("owner-clusters")
      .locator(`tr[data-cluster-id="${failing.id}"]`)
      .getByTestId("owner-cluster-reason")
      .filter({ hasText: "rank 0 failed: exit code 3" })
      .waitFor();
    await page
      .getByTestId("clusters-table")
      .locator(`tr[data-cluster-id="${unstarted.id}"]`)
      .getByText("never: it terminated before it started")
      .waitFor();
    await page.evaluate(() => window.sessionStorage.removeItem("tandem-api-key"));

    await page.goto(`${url}/`);
    await page.getByTestId("clusters-running").filter({ hasText: "0" }).waitFor();
    await eventually(
      async () =>
        (await anonymous.networkStats()).nodes.byStatus.available === 2 ? true : undefined,
      "the node free again",
    );
    await page.goto(`${url}/nodes/${gpuNodeId}`); // where the next case starts
  });

  it("shows a SIGKILLed worker's node going offline live, without a reload", async () => {
    await page.locator('[data-testid="node-status"]:not([data-status="offline"])').waitFor();
    // The node list, open in another tab meanwhile, follows with the same uptime as the page.
    const list = await context!.newPage();
    await list.goto(`${url}/nodes`);
    const listRow = list.locator(`tr[data-node-id="${gpuNodeId}"]`);
    await listRow.waitFor();
    const killedAtMs = Date.now();
    await page.evaluate((killedAt) => {
      const marked = window as unknown as { sameDocument: boolean; offlineSeenAtMs?: number };
      marked.sameDocument = true;
      // No named functions in here: tsx would wrap them in a helper the page does not have.
      new MutationObserver(() => {
        const badge = document.querySelector('[data-testid="node-status"]');
        if (badge?.getAttribute("data-status") === "offline" && Date.now() >= killedAt)
          marked.offlineSeenAtMs ??= Date.now();
      }).observe(document.body, { subtree: true, childList: true, attributes: true });
    }, killedAtMs);
    assert.equal(await gpuWorker.kill("SIGKILL"), "SIGKILL");

    await page.locator('[data-testid="node-status"][data-status="offline"]').waitFor();
    const seen = await page.evaluate(() => {
      const marked = window as unknown as { sameDocument?: boolean; offlineSeenAtMs?: number };
      return { sameDocument: marked.sameDocument, atMs: marked.offlineSeenAtMs };
    });
    assert.equal(seen.sameDocument, true, "the page was not reloaded");
    const history = await new TandemClient({ baseUrl: url }).nodeHistory(gpuNodeId, { limit: 500 });
    const offline = history.items.find((e) => e.to === "offline" && Date.parse(e.at) >= killedAtMs);
    assert.ok(offline !== undefined && seen.atMs !== undefined);
    const latencyMs = seen.atMs - Date.parse(offline.at);
    process.stderr.write(`explorer: offline shown ${latencyMs} ms after the coordinator saw it\n`);
    assert.ok(latencyMs < LIVE_BUDGET_MS, `offline shown after ${latencyMs} ms`);
    await page
      .getByTestId("history-table")
      .locator("tbody tr")
      .last()
      // A killed worker's connection closes: it is declared at its fencing bound for that.
      .filter({ hasText: "connection closed and not reopened" })
      .waitFor();
    await page.screenshot({ path: join(ARTIFACTS, "node-offline-live.png"), fullPage: true });
    await listRow.locator('[data-testid="row-status"][data-status="offline"]').waitFor();
    await eventuallyTrue(async () => {
      const onPage = await page.getByTestId("uptime-30d").textContent();
      return (await listRow.getByTestId("row-uptime").textContent()) === onPage;
    }, "the same 30-day uptime on the node list as on the node page");
    const { uptime } = await new TandemClient({ baseUrl: url }).getNode(gpuNodeId);
    assert.ok(uptime["30d"] < 1, `an offline node's uptime is below 100 % (${uptime["30d"]})`);
    await list.close();

    await page.getByRole("link", { name: "Nodes", exact: true }).first().click();
    await page
      .locator(`tr[data-node-id="${gpuNodeId}"] [data-testid="row-status"][data-status="offline"]`)
      .waitFor();
  });

  it("shows prices per GPU model beside a hyperscaler's, and nodes per region and zone", async () => {
    await page
      .getByRole("navigation", { name: "Main" })
      .getByRole("link", { name: "Prices" })
      .click();
    const h100 = page.getByTestId("prices-table").locator('tr[data-model="h100-80gb"]');
    await h100.waitFor();
    assert.match((await h100.getByTestId("available").textContent()) ?? "", /^8 GPUs1 nodes?$/);
    assert.match((await h100.textContent()) ?? "", /1\.990000.*12\.290000.*AWS p5\.48xlarge.*84 %/);
    const rtx = page.getByTestId("prices-table").locator('tr[data-model="rtx-4090"]');
    assert.match((await rtx.textContent()) ?? "", /0\.390000.*0 GPUs.*—/);
    assert.equal(await page.title(), "Prices · Tandem Explorer");
    await page.screenshot({ path: join(ARTIFACTS, "prices.png"), fullPage: true });

    await page
      .getByRole("navigation", { name: "Main" })
      .getByRole("link", { name: "Regions" })
      .click();
    const euWest = page.getByTestId("regions-table").locator('tbody[data-region="eu-west"]');
    await euWest.waitFor();
    const cells = async (row: string) =>
      (await euWest.locator(row).locator("td.num").allTextContents()).join(" ");
    // GPUs verified as the coordinator counts them (whether the fixture's cards prove themselves
    // is the verification's business): the page shows the same figure, beside those online.
    const board = await new TandemClient({ baseUrl: url }).networkRegions();
    const verified = board.regions.find((r) => r.id === "eu-west")!.gpusVerified;
    assert.ok(verified <= 8);
    assert.equal(await cells('tr[data-zone="eu-west-b"]'), `1 1 ${verified} 8 8`);
    assert.equal(await cells('tr[data-zone="eu-west-a"]'), "0 1 0 0 1", "the killed worker's zone");
    assert.equal(await cells("tr >> nth=0"), `1 2 ${verified} 8 9`);
    assert.equal(await page.getByTestId("regions-table").locator("tbody").count(), 1);
    await page.screenshot({ path: join(ARTIFACTS, "regions.png"), fullPage: true });

    await page.route("**/v1/network/prices", (route) => route.abort());
    await page.goto(`${url}/prices`);
    await page.getByRole("alert").filter({ hasText: "Cannot reach the coordinator" }).waitFor();
    expectedBrowserError("net::ERR_FAILED");
    await page.unroute("**/v1/network/prices");
    await page.getByRole("button", { name: "Try again" }).click();
    await h100.waitFor();
  });

  it("works on a phone-sized screen", async () => {
    const phone = await context!.newPage();
    await phone.setViewportSize({ width: 390, height: 800 });
    for (const [path, table] of [
      ["/nodes", "nodes-table"],
      ["/clusters", "clusters-table"],
      ["/prices", "prices-table"],
      ["/regions", "regions-table"],
    ] as const) {
      await phone.goto(`${url}${path}`);
      await phone.getByTestId(table).waitFor();
      const overflow = await phone.evaluate(
        () => document.documentElement.scrollWidth - document.documentElement.clientWidth,
      );
      assert.equal(overflow, 0, `no sideways scrolling of the whole page at ${path}`);
    }
    await phone.screenshot({ path: join(ARTIFACTS, "nodes-phone.png"), fullPage: true });
    await phone.goto(`${url}/nodes/${hgxNodeId}`);
    await phone
      .getByTestId("history-table")
      .locator('tr[data-action="lease-ended"]')
      .first()
      .waitFor();
    assert.deepEqual(await clippedHistory(phone, false), [], "history cut off at 390 px");
    await phone.screenshot({ path: join(ARTIFACTS, "node-history-phone.png"), fullPage: true });
    await phone.close();
  });

  it("keeps /v1 and /metrics out of the app's deep-link fallback", async () => {
    const deepLink = await fetch(`${url}/nodes/${hgxNodeId}?tab=history`);
    assert.equal(deepLink.status, 200);
    assert.match(deepLink.headers.get("content-type") ?? "", /^text\/html/);
    const unknownApi = await fetch(`${url}/v1/no-such-route`);
    assert.equal(unknownApi.status, 404);
    assert.equal(
      ((await unknownApi.json()) as { error: { code: string } }).error.code,
      "NOT_FOUND",
    );
    const metrics = await fetch(`${url}/metrics`);
    assert.match(await metrics.text(), /^# HELP /m);
    const missingAsset = await fetch(`${url}/assets/missing.js`);
    assert.equal(missingAsset.status, 404);
    const openapi = (await (await fetch(`${url}/v1/openapi.json`)).json()) as {
      paths: Record<string, unknown>;
    };
    assert.ok("/v1/events" in openapi.paths);
    assert.deepEqual(
      Object.keys(openapi.paths).filter((path) => !path.startsWith("/v1/")),
      [],
      "the explorer's routes stay out of the API description",
    );
  });

  it("logged no errors in the browser", () => {
    assert.deepEqual(browserErrors, []);
  });
});

describe("the explorer without a build", () => {
  it("answers / with a page saying how to build it, and leaves the API alone", async () => {
    const emptyDir = await mkdtemp(join(tmpdir(), "tandem-no-explorer-"));
    const app = Fastify().withTypeProvider<ZodTypeProvider>();
    app.setValidatorCompiler(validatorCompiler);
    app.setSerializerCompiler(serializerCompiler);
    app.setErrorHandler(errorHandler);
    app.setNotFoundHandler(notFoundHandler);
    await explorerRoutes(app, { distDir: emptyDir });
    try {
      for (const path of ["/", "/nodes?status=offline"]) {
        const page = await app.inject({ method: "GET", url: path });
        assert.equal(page.statusCode, 503);
        assert.match(page.body, /npm run build:web/);
      }
      const api = await app.inject({ method: "GET", url: "/v1/nodes" });
      assert.equal(api.statusCode, 404);
      assert.equal(api.json<{ error: { code: string } }>().error.code, "NOT_FOUND");
    } finally {
      await app.close();
      await rm(emptyDir, { recursive: true, force: true });
    }
  });
});

/**
 * History cells (and the table's frame) whose content is wider than their box: cut off. With
 * `proofs`, a proof's own table too (on a phone its seven columns scroll inside their cell).
 */
async function clippedHistory(page: Page, proofs: boolean): Promise<string[]> {
  return page.getByTestId("history-table").evaluate((table, withProofs) => {
    const boxes = [
      table.parentElement!,
      ...Array.from(
        table.querySelectorAll(withProofs ? "td, .table-scroll" : ":scope > tbody > tr > td"),
      ),
    ];
    return boxes
      .filter((el) => el.scrollWidth > el.clientWidth)
      .map((el) => `${el.scrollWidth} > ${el.clientWidth}: ${el.textContent?.slice(0, 80)}`);
  }, proofs);
}

/** The events on a cluster's page are lines of words: no JSON, no `fieldName: value` dumps. */
async function assertNoRawEvents(page: Page): Promise<void> {
  for (const text of await page.locator(".event-list li").allTextContents())
    assert.doesNotMatch(text, /\{"|"\}|\b[a-z]+[A-Z]\w*: /, `an event line: ${text}`);
}

/** The owner's view of an ended cluster: why it ended, and the refund as the API counts it. */
async function assertOutcome(
  page: Page,
  owner: TandemClient,
  clusterId: string,
  reason: RegExp,
): Promise<void> {
  const outcome = page.getByTestId("owner-outcome");
  await outcome.getByTestId("owner-end-reason").getByText(reason).waitFor();
  const costs = await eventually(async () => {
    const c = await owner.clusterCosts(clusterId);
    return c.escrow === "0.000000" ? c : undefined;
  }, "the escrow settled");
  assert.ok(/[1-9]/.test(costs.refunded), `something refunded (${costs.refunded})`);
  await outcome
    .getByTestId("owner-refund")
    .filter({
      hasText: `${costs.refunded} ${costs.currency} of ${costs.charged} ${costs.currency} charged`,
    })
    .waitFor();
}

async function eventuallyTrue(check: () => Promise<boolean>, what: string): Promise<void> {
  await eventually(async () => ((await check()) ? true : undefined), what, 10_000);
}
