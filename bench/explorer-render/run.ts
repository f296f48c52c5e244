/**
 * bench/explorer-render: how soon the explorer's nodes page shows its first rows, in a real
 * Chromium (playwright-core driving Debian's chromium), against a coordinator on loopback holding
 * 100,000 seeded nodes (SQLite by default, or a private PostgreSQL server).
 *
 *   node --import tsx bench/explorer-render/run.ts [--db sqlite|postgres] [--nodes 100000]
 *        [--runs 20]
 *
 * Each run opens `/nodes` in a fresh browser context (cold: no cache, no service worker) and, in
 * a second series, reloads it in the same context (warm: assets cached). Time is read in the page
 * (`performance.now()`, 0 = navigation start): first contentful paint, and the moment the table's
 * first data row exists (a MutationObserver set up before any script runs).
 */
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { chromium, type Browser, type Page } from "playwright-core";
import { ensureExplorerBuilt } from "../../web/build.ts";
import { seedNetwork, type SeededNetwork } from "../support/seeded-network.ts";
import { machine, progress, summarize } from "../support/stats.ts";
import { CHROMIUM, CHROMIUM_ARGS } from "../../test/support/chromium.ts";

const { values: args } = parseArgs({
  options: {
    runs: { type: "string", default: "20" },
    db: { type: "string", default: "sqlite" },
    nodes: { type: "string", default: "100000" },
  },
});
const runs = Number(args.runs);
const nodeCount = Number(args.nodes);

/** Set before the page's scripts run: notes when the first row of the nodes table appears. */
const OBSERVE_FIRST_ROW = `
  new MutationObserver((_, observer) => {
    if (document.querySelector('[data-testid="nodes-table"] tbody tr')) {
      window.__firstRowMs = performance.now();
      observer.disconnect();
    }
  }).observe(document, { subtree: true, childList: true });
`;

const home = await mkdtemp(join(tmpdir(), "tandem-bench-render-"));
let network: SeededNetwork | undefined;
let browser: Browser | undefined;
try {
  const machineAtStart = machine();
  await ensureExplorerBuilt();
  network = await seedNetwork(args.db, home, nodeCount);
  await network.store.close();
  progress(`seeded ${nodeCount} nodes (${args.db})`);
  const { url } = await network.startCoordinator();
  browser = await chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_ARGS });

  const measure = async (page: Page, load: () => Promise<unknown>) => {
    await load();
    await page.waitForFunction(() => "__firstRowMs" in window, undefined, { timeout: 30_000 });
    return page.evaluate(() => {
      const paint = performance.getEntriesByName("first-contentful-paint")[0];
      const rows = document.querySelectorAll('[data-testid="nodes-table"] tbody tr').length;
      return {
        firstRowMs: (window as unknown as { __firstRowMs: number }).__firstRowMs,
        fcpMs: paint?.startTime ?? NaN,
        rows,
      };
    });
  };

  const cold = { firstRowMs: [] as number[], fcpMs: [] as number[] };
  const warm = { firstRowMs: [] as number[], fcpMs: [] as number[] };
  let rows = 0;
  for (let i = 0; i < runs; i++) {
    const context = await browser.newContext({ viewport: { width: 1280, height: 860 } });
    await context.addInitScript(OBSERVE_FIRST_ROW);
    const page = await context.newPage();
    const first = await measure(page, () => page.goto(`${url}/nodes`));
    cold.firstRowMs.push(first.firstRowMs);
    cold.fcpMs.push(first.fcpMs);
    const again = await measure(page, () => page.reload());
    warm.firstRowMs.push(again.firstRowMs);
    warm.fcpMs.push(again.fcpMs);
    rows = first.rows;
    await context.close();
    progress(
      `run ${i + 1}: cold ${Math.round(first.firstRowMs)} ms, warm ${Math.round(again.firstRowMs)} ms`,
    );
  }
  console.log(
    JSON.stringify(
      {
        machine: { ...machineAtStart, loadAvg1mAtEnd: machine().loadAvg1m },
        conditions: { database: args.db, nodes: nodeCount, runs, rowsShown: rows },
        coldMs: { firstRow: summarize(cold.firstRowMs), fcp: summarize(cold.fcpMs) },
        warmMs: { firstRow: summarize(warm.firstRowMs), fcp: summarize(warm.fcpMs) },
      },
      null,
      2,
    ),
  );
} finally {
  await browser?.close();
  await network?.stop();
  await rm(home, { recursive: true, force: true });
}
