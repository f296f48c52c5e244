// The explorer's node page shows the engines a node's worker reported (its hardware report's
// `engines`, issue 20 item 4) in words: a real coordinator serving the built explorer, simulated
// workers over real WebSockets reporting a list, none, or nothing (a worker from before engines),
// and Debian's Chromium through playwright-core reading each node's page.
import assert from "node:assert/strict";
import { access } from "node:fs/promises";
import { after, before, describe, it } from "node:test";
import type { Page } from "playwright-core";
import type { Engine } from "../src/protocol/hardware.ts";
import { ensureExplorerBuilt } from "../web/build.ts";
import { CHROMIUM, openChromium } from "./support/chromium.ts";
import { startTestCoordinator, type TestCoordinator } from "./support/coordinator.ts";
import { availableWorker } from "./support/workers.ts";

const noBrowser = await access(CHROMIUM).then(
  () => false as const,
  () => `no Chromium at ${CHROMIUM} (apt-get install chromium)`,
);
if (noBrowser !== false && process.env.TANDEM_REQUIRE_BROWSER === "1")
  throw new Error(`TANDEM_REQUIRE_BROWSER=1 but ${noBrowser}`);

describe("the explorer's node page: engines", { skip: noBrowser }, () => {
  let tc: TestCoordinator;
  let browser: Awaited<ReturnType<typeof openChromium>> | undefined;
  let page: Page;
  const browserErrors: string[] = [];
  const sockets: Array<{ terminate(): void }> = [];

  before(async () => {
    await ensureExplorerBuilt();
    tc = await startTestCoordinator({ database: "sqlite" });
    browser = await openChromium(browserErrors);
    page = browser.page;
  });

  after(async () => {
    await browser?.close();
    for (const socket of sockets) socket.terminate();
    await tc.close();
  });

  it("reads each node's engines as words, none found, or not reported", async () => {
    const { apiKey } = await tc.signUp(["supplier"]);
    const cases: Array<[Engine[] | undefined, string]> = [
      [["torch", "dask", "ray", "podman"], "PyTorch, Dask, Ray, Podman (containers)"],
      [[], "none found: plain commands only"],
      [undefined, "not reported (an older worker: placed as able to run every kind)"],
    ];
    for (const [engines, shown] of cases) {
      const worker = await availableWorker(
        tc,
        apiKey,
        "eu-west-a",
        undefined,
        undefined,
        undefined,
        engines,
      );
      sockets.push(worker.socket);
      assert.deepEqual((await tc.client().getNode(worker.nodeId)).engines, engines ?? null);
      await page.goto(`${tc.url}/nodes/${worker.nodeId}`);
      const cell = page.getByTestId("engines");
      await cell.waitFor();
      assert.equal(await cell.textContent(), shown, JSON.stringify(engines));
      // A term of the hardware list, beside CPU, memory, disk and OS.
      assert.equal(await cell.evaluate((dd) => dd.previousElementSibling?.textContent), "Engines");
    }
    assert.deepEqual(browserErrors, []);
  });
});
