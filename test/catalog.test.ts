// Errors that list the valid values, and the catalog they come from (issue 20): an unknown GPU
// model or region is refused naming the valid ones (message and `details.valid`), and
// `GET /v1/catalog/gpus|regions` (public) and `tandem catalog gpus|regions` list them. The real
// CLI as a child process; the catalog reads no database, so SQLite alone is enough.
import assert from "node:assert/strict";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, it } from "node:test";
import { GPU_MODEL_IDS } from "../src/core/gpu-catalog.ts";
import { REGION_IDS } from "../src/core/regions.ts";
import { assertError, httpRequest, startTestCoordinator } from "./support/coordinator.ts";
import type { TestCoordinator } from "./support/coordinator.ts";
import { spawnTandem } from "./support/processes.ts";

let tc: TestCoordinator;
let home: string;
before(async () => {
  tc = await startTestCoordinator({ database: "sqlite" });
  home = await mkdtemp(join(tmpdir(), "tandem-cli-"));
});
after(async () => {
  await tc.close();
  await rm(home, { recursive: true, force: true });
});

async function tandem(args: string[]) {
  const cli = spawnTandem(args, { TANDEM_URL: tc.url, TANDEM_HOME: home });
  const code = await cli.exited;
  return { code, stdout: cli.stdout.join("\n"), stderr: cli.stderr.join("\n") };
}

it("an unknown GPU model or region is refused with the valid ones", async () => {
  const search = (body: object) => httpRequest(tc.url, "POST", "/v1/search", { body });
  const gpu = assertError(await search({ nodes: 1, gpuModel: "h100" }), 400, "UNKNOWN_GPU_MODEL");
  assert.deepEqual(gpu.details?.valid, ["cpu", ...GPU_MODEL_IDS]);
  assert.match(gpu.message, /^unknown GPU model h100; one of: cpu, h100-80gb, .*rtx-4090/);
  const region = assertError(
    await search({ nodes: 1, regions: ["eu-west", "mars"] }),
    400,
    "UNKNOWN_REGION",
  );
  assert.deepEqual(region.details?.valid, [...REGION_IDS]);
  assert.deepEqual(region.details?.regions, ["mars"]);
  assert.match(region.message, /^unknown region mars; one of: us-east, .*eu-west/);

  const cli = await tandem(["search", "--gpu", "h100"]);
  assert.equal(cli.code, 1);
  assert.match(cli.stderr, /unknown GPU model h100; one of: cpu, h100-80gb,.*UNKNOWN_GPU_MODEL/);
});

it("the catalog lists GPU models with their figures and price, and regions with zones", async () => {
  const gpus = (await tc.client().catalogGpus()).gpus;
  assert.deepEqual(
    gpus.map((g) => g.id),
    [...GPU_MODEL_IDS],
  );
  const h100 = gpus.find((g) => g.id === "h100-80gb")!;
  assert.deepEqual(
    [h100.vramMiB, h100.catalogPerGpuHour, h100.tier],
    [81_920, "1.990000", "datacenter"],
  );
  assert.ok(h100.tensorTflops > 0);
  const regions = (await tc.client().catalogRegions()).regions;
  assert.deepEqual(
    regions.find((r) => r.id === "eu-west"),
    { id: "eu-west", name: "Europe West", zones: ["eu-west-a", "eu-west-b", "eu-west-c"] },
  );

  const table = await tandem(["catalog", "gpus"]);
  assert.equal(table.code, 0, table.stderr);
  assert.match(table.stdout, /^ID +NAME +VRAM +TENSOR TFLOPS +PRICE\/GPU-H \(USD\)/);
  assert.match(table.stdout, /\nh100-80gb +\S.* +80\.0 GiB +[\d.]+ +1\.990000\n/);
  assert.match(table.stdout, /--gpu cpu: CPU-only nodes, 0\.020000 USD per node-hour/);
  const json = await tandem(["catalog", "regions", "--json"]);
  assert.equal(json.code, 0, json.stderr);
  assert.deepEqual((JSON.parse(json.stdout) as { regions: unknown[] }).regions, regions);
  const zones = await tandem(["catalog", "regions"]);
  assert.match(zones.stdout, /\neu-west +Europe West +eu-west-a, eu-west-b, eu-west-c\n/);
});
