/**
 * deploy/grafana/tandem.json (issue 20) is an importable Grafana dashboard over metrics a
 * coordinator really exports: every `tandem_*` name in its queries is in a live `/metrics`.
 */
import assert from "node:assert/strict";
import { readFile } from "node:fs/promises";
import { test } from "node:test";
import { httpRequest, startTestCoordinator } from "./support/coordinator.ts";

interface Dashboard {
  __inputs: Array<{ name: string; pluginId: string }>;
  uid: string;
  panels: Array<{
    id: number;
    title: string;
    datasource: { uid: string };
    gridPos: { x: number; y: number; w: number; h: number };
    targets: Array<{ expr: string; datasource: { uid: string } }>;
  }>;
}

test("every metric the dashboard queries is one a coordinator exports", async (t) => {
  const dashboard = JSON.parse(
    await readFile(new URL("../deploy/grafana/tandem.json", import.meta.url), "utf8"),
  ) as Dashboard;
  assert.deepEqual(
    dashboard.__inputs.map((i) => [i.name, i.pluginId]),
    [["DS_PROMETHEUS", "prometheus"]],
  );
  const ids = dashboard.panels.map((p) => p.id);
  assert.equal(new Set(ids).size, ids.length, "panel ids are unique");
  for (const panel of dashboard.panels) {
    assert.equal(panel.datasource.uid, "${DS_PROMETHEUS}", panel.title);
    assert.ok(panel.gridPos.x + panel.gridPos.w <= 24, panel.title);
    assert.ok(panel.targets.length > 0, panel.title);
    for (const target of panel.targets) assert.equal(target.datasource.uid, "${DS_PROMETHEUS}");
  }

  const tc = await startTestCoordinator({ database: "sqlite" });
  t.after(() => tc.close());
  const scraped = (await httpRequest(tc.url, "GET", "/metrics")).text;
  const exported = new Set<string>();
  for (const [, name, type] of scraped.matchAll(/^# TYPE (\S+) (\S+)$/gm)) {
    exported.add(name!);
    if (type === "histogram" || type === "summary")
      for (const suffix of ["_bucket", "_sum", "_count"]) exported.add(name! + suffix);
  }
  const queried = new Set(
    dashboard.panels.flatMap((p) =>
      p.targets.flatMap((target) =>
        [...target.expr.matchAll(/\btandem_[a-z0-9_]+/g)].map((m) => m[0]),
      ),
    ),
  );
  assert.ok(queried.has("tandem_gpu_hours_served") && queried.has("tandem_gpu_utilization_ratio"));
  assert.deepEqual(
    [...queried].filter((name) => !exported.has(name)),
    [],
  );
});
