/**
 * Sealed secrets inside the worker, with real processes (the process runtime): a box sealed to
 * this device opens into the job's environment; a box sealed to another device, or to another
 * node, starts nothing and is reported as refused (the consumer's doing).
 */
import { DEFAULT_OUTPUT_LIMITS } from "./rank-output.ts";
import assert from "node:assert/strict";
import { createHash, generateKeyPairSync } from "node:crypto";
import { chmod, mkdtemp, rm } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { after, before, it } from "node:test";
import { publicKeyOf, seedOf } from "../../protocol/device-signing.ts";
import { IdPrefix, newId } from "../../protocol/ids.ts";
import { sealSecret } from "../../protocol/sealed-secrets.ts";
import type { JobStartMessage, WorkerMessage } from "../../protocol/worker-messages.ts";
import { tracking } from "../runtime/job-harness.ts";
import { createProcessRuntime } from "../runtime/process-runtime.ts";
import { JobSupervisor } from "./supervisor.ts";

const runtime = tracking(createProcessRuntime());
let jobsDir = "";
before(async () => {
  jobsDir = await mkdtemp(path.join(os.tmpdir(), "tandem-secrets-"));
  await chmod(jobsDir, 0o711);
});
after(async () => {
  await runtime.killAll();
  await rm(jobsDir, { recursive: true, force: true });
});

const NODE = "node_01kbz0000000000000000000aa";
const SECRET = "the value only this job sees";

function device() {
  const { privateKey } = generateKeyPairSync("ed25519");
  return { publicKey: publicKeyOf(privateKey), seed: seedOf(privateKey) };
}

/** Runs one job-start to its end on a supervisor holding `key`; every message it sent. */
async function run(key: { seed: Uint8Array }, job: JobStartMessage): Promise<WorkerMessage[]> {
  const sent: WorkerMessage[] = [];
  const supervisor = new JobSupervisor({
    runtime,
    jobsDir,
    python: "/usr/bin/python3",
    gpuIndices: [],
    offer: { memoryMiB: 1024, cpuCores: 1, pids: 512, diskMiB: 256 },
    output: DEFAULT_OUTPUT_LIMITS,
    secretKey: { seed: key.seed, nodeId: NODE },
    send: (message) => sent.push(message),
    log: () => undefined,
  });
  await supervisor.start(job);
  return sent;
}

function start(secrets: Record<string, string>, clusterId: string): JobStartMessage {
  return {
    type: "job-start",
    clusterId,
    rank: 1,
    attempt: 0,
    worldSize: 2,
    kind: "batch",
    command: ["sh", "-c", 'printf %s "$API_TOKEN" | sha256sum; echo "plain=$PLAIN"'],
    env: { PLAIN: "visible" },
    image: null,
    head: { address: "127.0.0.1", port: 29_500 },
    secrets,
  };
}

it("opens a box sealed to this device into the job's environment", async () => {
  const me = device();
  const clusterId = newId(IdPrefix.cluster);
  const box = sealSecret(me.publicKey, { clusterId, nodeId: NODE, name: "API_TOKEN" }, SECRET);
  const sent = await run(me, start({ API_TOKEN: box }, clusterId));
  const lines = sent.flatMap((m) => (m.type === "job-log" ? m.lines : []));
  const digest = createHash("sha256").update(SECRET).digest("hex");
  assert.deepEqual(lines, [`${digest}  -`, "plain=visible"]);
  const exit = sent.find((m) => m.type === "job-exit");
  assert.equal(exit?.exitCode, 0);
  assert.equal(exit?.secretsRefused, undefined);
});

it("starts nothing and reports the refusal when a box was sealed to another device or node", async () => {
  const me = device();
  const clusterId = newId(IdPrefix.cluster);
  const binding = { clusterId, nodeId: NODE, name: "API_TOKEN" };
  for (const box of [
    sealSecret(device().publicKey, binding, SECRET),
    sealSecret(me.publicKey, { ...binding, nodeId: "node_01kbz0000000000000000000bb" }, SECRET),
  ]) {
    const sent = await run(me, start({ API_TOKEN: box }, clusterId));
    assert.deepEqual(
      sent.map((m) => m.type),
      ["job-exit"],
      "no rendezvous, no accept, no output",
    );
    const exit = sent[0]!;
    assert.ok(exit.type === "job-exit");
    assert.equal(exit.exitCode, null);
    assert.equal(exit.secretsRefused, true);
    assert.match(exit.error ?? "", /secret API_TOKEN does not open on this device/);
  }
});
