// The explorer's token page and a node's stake (issue 16 item 6): a real coordinator on a manual
// clock serving the built explorer, TDM staked on a verified node through the API, the leader
// paying hour 0's reward block, and Debian's Chromium through playwright-core reading the supply,
// the schedule, the block (it appears live, without a reload) and the node's stake.
import assert from "node:assert/strict";
import { access, mkdir } from "node:fs/promises";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { after, before, describe, it } from "node:test";
import type { Page } from "playwright-core";
import { formatTdm } from "../web/src/format.ts";
import { ensureExplorerBuilt } from "../web/build.ts";
import { CHROMIUM, openChromium } from "./support/chromium.ts";
import { ManualClock, startTestCoordinator, type TestCoordinator } from "./support/coordinator.ts";
import { fixtureHardware } from "./support/devices.ts";
import { GENESIS_MS, hourStart } from "./support/reward-network.ts";
import { registerDevice } from "./support/workers.ts";

const noBrowser = await access(CHROMIUM).then(
  () => false as const,
  () => `no Chromium at ${CHROMIUM} (apt-get install chromium)`,
);
if (noBrowser !== false && process.env.TANDEM_REQUIRE_BROWSER === "1")
  throw new Error(`TANDEM_REQUIRE_BROWSER=1 but ${noBrowser}`);

const ARTIFACTS = fileURLToPath(new URL("../test-artifacts/explorer/", import.meta.url));

/** Waits until the element's text is `expected` (the page refetches at each live sample). */
async function textBecomes(page: Page, testId: string, expected: string): Promise<void> {
  await page.waitForFunction(
    ([id, text]) => document.querySelector(`[data-testid="${id}"]`)?.textContent === text,
    [testId, expected] as const,
    { timeout: 20_000 },
  );
}

describe("the explorer's token page and a node's stake", { skip: noBrowser }, () => {
  const clock = new ManualClock(GENESIS_MS - 600_000);
  let tc: TestCoordinator;
  let browser: Awaited<ReturnType<typeof openChromium>> | undefined;
  let page: Page;
  const browserErrors: string[] = [];

  before(async () => {
    await ensureExplorerBuilt();
    await mkdir(ARTIFACTS, { recursive: true });
    const config = { genesisAtMs: GENESIS_MS, rewardBlockCheckMs: 100 };
    tc = await startTestCoordinator({ database: "sqlite", clock, config });
    browser = await openChromium(browserErrors);
    page = browser.page;
  });

  after(async () => {
    await browser?.close();
    await tc.close();
  });

  it("shows the supply, the schedule, a block paid live with its nodes, and the node's stake", async () => {
    const supplier = await tc.signUp(["supplier"]);
    const staker = await tc.signUp(["consumer"]);
    const hardware = await fixtureHardware("rtx4090");
    hardware.gpus = hardware.gpus.map((g) => ({ ...g, uuid: `GPU-token-page-${process.pid}` }));
    const { nodeId } = await registerDevice(tc, supplier.apiKey, hardware);
    const ctx = { actor: "test", reason: "test", nowMs: clock.now() };
    await tc.coordinator.lifecycle.apply(nodeId, { type: "connect", verified: false }, ctx);
    await tc.coordinator.lifecycle.apply(nodeId, { type: "verify" }, ctx);
    const admin = tc.client(tc.adminKey);
    await admin.deposit({ accountId: supplier.accountId, currency: "TDM", amount: "200" });
    await admin.deposit({ accountId: staker.accountId, currency: "TDM", amount: "50" });
    await supplier.client.stake({ nodeId, amount: "100" });
    await staker.client.stake({ nodeId, amount: "50" });

    await page.goto(`${tc.url}/nodes/${nodeId}`);
    await textBecomes(page, "stake-active", "150.000000 TDM");
    assert.equal(await page.getByTestId("stake-unbonding").textContent(), "0.000000 TDM");
    assert.equal(await page.getByTestId("stake-stakers").textContent(), "2 (2 positions)");
    assert.equal(await page.getByTestId("stake-commission").textContent(), "10.00 %");

    await page
      .getByRole("navigation", { name: "Main" })
      .getByRole("link", { name: "Token" })
      .click();
    await page.getByText("No reward block yet").waitFor();
    const supplyBefore = await tc.client().tokenSupply();
    assert.equal(supplyBefore.staked, "150.000000");
    for (const [key, value] of Object.entries(supplyBefore))
      await textBecomes(page, `supply-${key}`, formatTdm(value));
    assert.equal(
      await page.getByTestId("supply-maxSupply").textContent(),
      "800,000,000.000000 TDM",
    );
    assert.equal(await page.getByTestId("emission-hourly").textContent(), "0.000000 TDM");
    const years = page.getByTestId("emission-years").locator("tbody tr");
    assert.equal(await years.count(), 20);
    assert.equal(await years.first().locator("td").nth(1).textContent(), "40,000,000.000000 TDM");

    // Hour 0 ends: the leader pays its block; the open page shows it at the next live sample.
    clock.set(hourStart(1) + 1_000);
    const row = page.locator('[data-testid="blocks-table"] tr[data-hour="0"]');
    await row.waitFor({ timeout: 20_000 });
    const { items } = await tc.client().rewardBlocks();
    assert.deepEqual(
      items.map((b) => [b.hour, b.minted, b.rewarded, b.nominated]),
      [[0, "4566.210045", 1, 1]],
    );
    assert.equal(await row.getByTestId("block-minted").textContent(), "4,566.210045 TDM");
    assert.equal(await row.getByTestId("block-rewarded").textContent(), "1 of 1");
    const afterBlock = await tc.client().tokenSupply();
    assert.equal(afterBlock.emitted, "4566.210045");
    for (const [key, value] of Object.entries(afterBlock))
      await textBecomes(page, `supply-${key}`, formatTdm(value));
    await textBecomes(page, "emission-hourly", "4,566.210045 TDM");
    await page.screenshot({ path: join(ARTIFACTS, "token.png"), fullPage: true });

    await row.getByRole("link", { name: "0" }).click();
    const share = page.locator(`[data-testid="block-nodes"] tr[data-node-id="${nodeId}"]`);
    await share.waitFor();
    assert.equal(await share.getByTestId("node-share").textContent(), "4,566.210045 TDM");
    await page.screenshot({ path: join(ARTIFACTS, "reward-block.png"), fullPage: true });

    await share.getByRole("link", { name: nodeId }).click();
    const stake = await tc.client().nodeStake(nodeId);
    assert.equal(stake.active, "4259.589041");
    await textBecomes(page, "stake-active", formatTdm(stake.active));
    assert.equal(
      await page.getByTestId("stake-rewards").textContent(),
      "4,566.210045 TDM in 1 block, of which commission 456.621004 TDM (reward blocks)",
    );
    await page.getByTestId("node-stake").screenshot({ path: join(ARTIFACTS, "node-stake.png") });
    assert.deepEqual(browserErrors, []);
  });

  it("pages the reward blocks 20 at a time, newest first", async () => {
    // Hours 1 to 20 end: 21 blocks in all, one more than a page.
    clock.set(hourStart(21) + 1_000);
    await page.goto(`${tc.url}/token`);
    const hours = page.locator('[data-testid="blocks-table"] tbody tr');
    await page.locator('[data-testid="blocks-table"] tr[data-hour="20"]').waitFor();
    assert.equal((await tc.client().rewardBlocks({ limit: 100 })).items.length, 21);
    const shown = async () => hours.evaluateAll((rows) => rows.map((r) => r.dataset.hour));
    assert.deepEqual(
      await shown(),
      Array.from({ length: 20 }, (_, i) => String(20 - i)),
    );
    await page.getByRole("button", { name: "Next →" }).click();
    await page.waitForURL(/\/token\?cursor=1$/);
    await page.locator('[data-testid="blocks-table"] tr[data-hour="0"]').waitFor();
    assert.deepEqual(await shown(), ["0"]);
    await page.getByRole("button", { name: "← Previous" }).click();
    await page.locator('[data-testid="blocks-table"] tr[data-hour="20"]').waitFor();
    assert.equal(await hours.count(), 20);
    assert.deepEqual(browserErrors, []);
  });

  it("fits a phone-sized screen: no sideways scrolling of the whole page", async () => {
    await page.setViewportSize({ width: 390, height: 800 });
    for (const [path, table] of [
      ["/token", "blocks-table"],
      ["/token/blocks/0", "block-nodes"],
    ] as const) {
      await page.goto(`${tc.url}${path}`);
      await page.getByTestId(table).waitFor();
      const overflow = await page.evaluate(
        () => document.documentElement.scrollWidth - document.documentElement.clientWidth,
      );
      assert.equal(overflow, 0, path);
    }
    await page.screenshot({ path: join(ARTIFACTS, "token-phone.png"), fullPage: true });
    assert.deepEqual(browserErrors, []);
  });
});
