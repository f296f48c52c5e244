/**
 * The supervisor gives a rank whose job-start carries `network` its own namespace, runs it there
 * and removes the namespace when the run ends, also when the start fails; without the port it
 * refuses such a job-start. (`internet: false` here: no veth, no rules, nothing of the test
 * machine's own namespace changes; the NAT and its rules are tested in a simulated host,
 * src/worker/network/job-netns.test.ts.)
 */
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { existsSync } from "node:fs";
import { chmod, mkdtemp, rm } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import { IdPrefix, newId } from "../../protocol/ids.ts";
import type { JobStartMessage, WorkerMessage } from "../../protocol/worker-messages.ts";
import { createJobNetns, sweepJobNetworks, type JobNetns } from "../network/job-netns.ts";
import { tracking } from "../runtime/job-harness.ts";
import { createProcessRuntime } from "../runtime/process-runtime.ts";
import { DEFAULT_OUTPUT_LIMITS } from "./rank-output.ts";
import type { JobNetworks } from "../network/job-networks.ts";
import type { RankNetworkPorts } from "./rank-network.ts";
import { JobSupervisor } from "./supervisor.ts";

const runtime = tracking(createProcessRuntime());
const tag = `s${randomBytes(3).toString("hex")}`;
let jobsDir = "";
before(async () => {
  jobsDir = await mkdtemp(path.join(os.tmpdir(), "tandem-supervisor-net-"));
  await chmod(jobsDir, 0o711);
});
after(async () => {
  await runtime.killAll();
  await sweepJobNetworks(tag);
  await rm(jobsDir, { recursive: true, force: true });
});

function supervised(jobNetworks: JobNetworks | undefined, more: Partial<RankNetworkPorts> = {}) {
  const sent: WorkerMessage[] = [];
  const supervisor = new JobSupervisor({
    runtime,
    jobsDir,
    python: "/usr/bin/python3",
    gpuIndices: [],
    offer: { memoryMiB: 4096, cpuCores: 2, pids: 4096, diskMiB: 1024 },
    output: DEFAULT_OUTPUT_LIMITS,
    network: { jobNetworks, localAddress: () => "127.0.0.1", ...more },
    send: (message) => void sent.push(message),
    log: () => undefined,
  });
  return { supervisor, sent };
}

/** A port over the real createJobNetns that remembers what it made. */
function recordingNetworks(): JobNetworks & { made: JobNetns[] } {
  const made: JobNetns[] = [];
  return {
    made,
    async create(spec) {
      const netns = await createJobNetns({ workerTag: tag, internet: spec.internet });
      made.push(netns);
      return netns;
    },
  };
}

function jobStart(command: string[], internet = false): JobStartMessage {
  return {
    type: "job-start",
    clusterId: newId(IdPrefix.cluster),
    rank: 0,
    attempt: 0,
    worldSize: 1,
    kind: "batch",
    command,
    env: {},
    image: null,
    head: { address: "127.0.0.1", port: 29_500 },
    network: { internet, overlay: false },
  };
}

const interfaces = ["sh", "-c", "tail -n +3 /proc/net/dev | cut -d: -f1 | tr -d ' '"];

describe(
  "job supervisor: rank networks",
  { skip: process.getuid?.() !== 0 && "needs root" },
  () => {
    it("runs the rank in its own namespace and removes it when the run ends", async () => {
      const networks = recordingNetworks();
      const { supervisor, sent } = supervised(networks);
      await supervisor.start(jobStart(interfaces));
      const lines = sent.flatMap((m) => (m.type === "job-log" ? m.lines : []));
      assert.deepEqual(lines, ["lo"], "the host's interfaces are not there");
      const exit = sent.find((m) => m.type === "job-exit");
      assert.equal(exit?.type === "job-exit" && exit.exitCode, 0);
      assert.equal(networks.made.length, 1);
      assert.ok(!existsSync(networks.made[0]!.path), "the namespace is gone after the run");
    });

    it("removes the namespace when the start fails", async () => {
      const networks = recordingNetworks();
      const { supervisor, sent } = supervised(networks);
      await supervisor.start(jobStart(["sh", "-c", "true\0"]));
      const exit = sent.find((m) => m.type === "job-exit");
      assert.equal(exit?.type === "job-exit" && exit.startFailure, "invalid-job");
      assert.equal(networks.made.length, 1);
      assert.ok(!existsSync(networks.made[0]!.path));
    });

    it("a worker that cannot isolate refuses a rank that asks for its own network", async () => {
      const { supervisor, sent } = supervised(undefined);
      await supervisor.start(jobStart(["true"]));
      const exit = sent.find((m) => m.type === "job-exit");
      assert.ok(exit?.type === "job-exit");
      assert.equal(exit.startFailure, "start-failed");
      assert.match(exit.error ?? "", /cannot give a rank without internet its own network/);
      assert.ok(!sent.some((m) => m.type === "job-accepted"));
    });

    it("a worker that cannot isolate runs a rank that may use the internet on the host's network", async () => {
      const { supervisor, sent } = supervised(undefined);
      await supervisor.start(jobStart(interfaces, true));
      const exit = sent.find((m) => m.type === "job-exit");
      assert.equal(exit?.type === "job-exit" && exit.exitCode, 0);
      const lines = sent.flatMap((m) => (m.type === "job-log" ? m.lines : []));
      assert.ok(lines.length > 1, `the host's interfaces: ${lines.join(" ")}`);
    });

    it("a rank stopped while it waits for its head's peer list ends at once, its namespace gone", async () => {
      const networks = recordingNetworks();
      // The overlay port's stand-in: no WireGuard here, and no peer list ever comes.
      const overlays: RankNetworkPorts["overlays"] = {
        create: () =>
          Promise.resolve({
            publicKey: `${"A".repeat(43)}=`,
            listenPort: 51_820,
            deviceName: "tdmtest",
            setPeers: () => Promise.resolve(),
            handshaken: () => Promise.resolve(false),
            destroy: () => Promise.resolve(),
          }),
      };
      const { supervisor, sent } = supervised(networks, { overlays, headPeerWaitMs: 600_000 });
      const job: JobStartMessage = {
        ...jobStart(["true"]),
        kind: "torch",
        rank: 1,
        worldSize: 2,
        head: { address: "10.77.0.1", port: 29_500 },
        network: { internet: false, overlay: true },
      };
      const started = supervisor.start(job);
      while (!sent.some((m) => m.type === "job-network"))
        await new Promise((r) => setTimeout(r, 10));
      await supervisor.stop(job.clusterId);
      await started;
      const exit = sent.find((m) => m.type === "job-exit");
      assert.equal(exit?.type === "job-exit" && exit.error, "stopped before it started");
      assert.ok(!sent.some((m) => m.type === "job-accepted"), "the job never ran");
      assert.ok(!existsSync(networks.made[0]!.path), "the namespace is gone");
    });
  },
);
