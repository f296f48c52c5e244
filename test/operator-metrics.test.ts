/**
 * Supply and use in `/metrics` (issue 20): GPUs connected, verified and leased, nodes by status,
 * utilization, GPU-hours served and nodes seen in 30 days, scraped from a real coordinator on a
 * manual clock while an 8×H100 node serves a lease, on SQLite and PostgreSQL.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { GPU_CATALOG } from "../src/core/gpu-catalog.ts";
import {
  ManualClock,
  forEachDatabase,
  httpRequest,
  type TestCoordinator,
} from "./support/coordinator.ts";
import {
  connectWorker,
  fixtureHardware,
  newDeviceKey,
  signedRegistration,
  type GpuFixture,
} from "./support/devices.ts";
import { proveHonestly } from "./support/prover.ts";
import { fund } from "./support/workers.ts";

const MINUTE = 60_000;
const DAY = 1_440 * MINUTE;

/** What an honest card shows: 80 % of its tensor peak. */
const honestTflops = (model: string) => 0.8 * GPU_CATALOG.find((m) => m.id === model)!.tensorTflops;

/** A node of `fixture`'s hardware, connected and through its proof of hardware. */
async function provenNode(
  tc: TestCoordinator,
  clock: ManualClock,
  apiKey: string,
  fixture: GpuFixture,
  model: string,
) {
  const device = newDeviceKey();
  const registered = await tc.client(apiKey).registerDevice(
    signedRegistration(device, {
      region: "eu-west",
      zone: "eu-west-a",
      hardware: await fixtureHardware(fixture),
    }),
  );
  const worker = await connectWorker(tc.url, registered.deviceId, device.privateKey);
  await proveHonestly(worker, honestTflops(model), () => clock.advance(1));
  return worker;
}

/** The scrape as `name{labels}` → value. */
async function scrape(tc: TestCoordinator): Promise<Map<string, number>> {
  const response = await httpRequest(tc.url, "GET", "/metrics");
  assert.equal(response.status, 200);
  const values = new Map<string, number>();
  for (const line of response.text.split("\n")) {
    if (line === "" || line.startsWith("#")) continue;
    const at = line.lastIndexOf(" ");
    values.set(line.slice(0, at), Number(line.slice(at + 1)));
  }
  return values;
}

function assertFigures(scraped: Map<string, number>, expected: Record<string, number>): void {
  const actual = Object.fromEntries(Object.keys(expected).map((k) => [k, scraped.get(k)]));
  assert.deepEqual(actual, expected);
}

async function until(what: string, check: () => Promise<boolean>): Promise<void> {
  for (let i = 0; i < 1000; i++) {
    if (await check()) return;
    await new Promise((r) => setTimeout(r, 10));
  }
  throw new Error(`never: ${what}`);
}

forEachDatabase("operator metrics", (db) => {
  test("a lease on an 8×H100 node: leased GPUs, utilization and GPU-hours served", async (t) => {
    const clock = new ManualClock();
    const tc = await db.startCoordinator({
      clock,
      // No spot check of the idle nodes across the 31 days the clock jumps below.
      config: { livenessSweepMs: 0, schedulerTickMs: 86_400_000, proofIntervalMs: 365 * DAY },
    });
    t.after(() => tc.close());
    const { apiKey, accountId } = await tc.signUp(["consumer", "supplier"]);
    await fund(tc, accountId, "1000");
    const h100 = await provenNode(tc, clock, apiKey, "h100x8", "h100-80gb");
    const rtx = await provenNode(tc, clock, apiKey, "rtx4090", "rtx-4090");
    t.after(() => h100.socket.terminate());
    t.after(() => rtx.socket.terminate());
    const client = tc.client(apiKey);
    await until("both nodes available", async () => {
      return (await client.networkStats()).nodes.byStatus.available === 2;
    });
    assertFigures(await scrape(tc), {
      'tandem_gpus{state="verified"}': 9,
      'tandem_gpus{state="leased"}': 0,
      tandem_gpu_utilization_ratio: 0,
      tandem_gpu_hours_served: 0,
      tandem_nodes_seen_30d: 2,
    });

    const cluster = await client.deployCluster({
      kind: "batch",
      nodes: 1,
      hours: 2,
      gpuModel: "h100-80gb",
      command: ["true"],
    });
    const start = await h100.next();
    assert.equal(start.type, "job-start");
    h100.send({ type: "job-accepted", clusterId: cluster.id, rank: 0, attempt: 0, port: 29_500 });
    await until("the cluster runs", async () => {
      return (await client.getCluster(cluster.id)).status === "running";
    });
    clock.advance(90 * MINUTE);
    assertFigures(await scrape(tc), {
      'tandem_gpus{state="connected"}': 9,
      'tandem_gpus{state="verified"}': 9,
      'tandem_gpus{state="leased"}': 8,
      'tandem_nodes{state="leased"}': 1,
      'tandem_nodes_by_status{status="leased"}': 1,
      'tandem_nodes_by_status{status="available"}': 1,
      'tandem_nodes_by_status{status="offline"}': 0,
      'tandem_gpus_by_status{status="leased"}': 8,
      'tandem_gpus_by_status{status="available"}': 1,
      tandem_gpu_utilization_ratio: 8 / 9,
      // 8 GPUs × 90 minutes.
      tandem_gpu_hours_served: 12,
      tandem_nodes_seen_30d: 2,
    });

    // Terminated: nothing leased, and the hours served stay what they were.
    await client.terminateCluster(cluster.id);
    await until("the node is released", async () => {
      return (await client.networkStats()).nodes.byStatus.available === 2;
    });
    clock.advance(60 * MINUTE);
    assertFigures(await scrape(tc), {
      'tandem_gpus{state="leased"}': 0,
      tandem_gpu_utilization_ratio: 0,
      tandem_gpu_hours_served: 12,
    });

    // The RTX node falls silent; 31 days on, only the H100 node was heard in the last 30 days.
    clock.advance(31 * DAY);
    const { gateway } = tc.coordinator;
    await gateway.flushLastSeen();
    const heard = gateway.detector.lastPayload(h100.nodeId);
    h100.send({
      type: "heartbeat",
      seq: 1,
      utilization: { cpuPct: 1, memoryUsedMiB: 1, gpus: [] },
    });
    await until("the heartbeat is taken in", () =>
      Promise.resolve(gateway.detector.lastPayload(h100.nodeId) !== heard),
    );
    await gateway.sweep();
    await gateway.flushLastSeen();
    assertFigures(await scrape(tc), {
      'tandem_nodes{state="connected"}': 1,
      'tandem_gpus{state="verified"}': 8,
      tandem_nodes_seen_30d: 1,
      tandem_gpu_hours_served: 12,
    });
  });
});
