// Per-rank network set-up and tear-down time (issue 14): createJobNetns and destroy() run by the
// worker's code inside a simulated host (test/support/hosts.ts), N times each way, one at a time.
// Needs root. `node --import tsx bench/job-networks/run.ts [--runs 20]`
import os from "node:os";
import { parseArgs } from "node:util";
import { createHosts } from "../../test/support/hosts.ts";
import { startJobNetworkDriver } from "../../test/support/job-network-driver.ts";

const { values } = parseArgs({ options: { runs: { type: "string", default: "20" } } });
const runs = Number(values.runs);
const hosts = await createHosts({ hosts: 1 });
try {
  const driver = startJobNetworkDriver(hosts, hosts.hosts[0]!);
  const quantile = (xs: number[], q: number) =>
    [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor(q * xs.length))]!;
  for (const internet of [true, false]) {
    const create: number[] = [];
    const destroy: number[] = [];
    for (let i = 0; i < runs; i++) {
      let t = performance.now();
      const netns = await driver.create({ workerTag: hosts.workerTag, internet });
      create.push(performance.now() - t);
      t = performance.now();
      await driver.destroy(netns.name);
      destroy.push(performance.now() - t);
    }
    const f = (xs: number[]) =>
      `p50 ${quantile(xs, 0.5).toFixed(0)} ms, p95 ${quantile(xs, 0.95).toFixed(0)} ms`;
    console.log(
      `internet=${internet} (${runs} runs, load ${os.loadavg()[0]!.toFixed(1)}): ` +
        `set-up ${f(create)}; tear-down ${f(destroy)}`,
    );
  }
} finally {
  await hosts.destroy();
}
