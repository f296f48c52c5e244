/**
 * The job supervisor with real processes (the process runtime: no sandbox needed to test what the
 * supervisor itself decides): every message echoes its run's attempt; a duplicate job-start is
 * ignored; a higher attempt replaces the running one in the same job dir, which survives until the
 * cluster's newest run ends; stopAll (what fencing calls) ends a real job's processes.
 */
import assert from "node:assert/strict";
import { access, chmod, mkdtemp, rm } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import { ed25519 } from "@noble/curves/ed25519.js";
import { CLUSTER_TLS_KEY_NAME } from "../../protocol/cluster-tls.ts";
import { IdPrefix, newId } from "../../protocol/ids.ts";
import { sealSecret } from "../../protocol/sealed-secrets.ts";
import type { JobStartMessage, WorkerMessage } from "../../protocol/worker-messages.ts";
import { processesWith, sleepersAtLeast, tracking } from "../runtime/job-harness.ts";
import { createProcessRuntime } from "../runtime/process-runtime.ts";
import { DEFAULT_OUTPUT_LIMITS, TRUNCATED } from "./rank-output.ts";
import type { DeviceSecretKey } from "./job-secrets.ts";
import { JobSupervisor } from "./supervisor.ts";

const runtime = tracking(createProcessRuntime());
let jobsDir = "";
before(async () => {
  jobsDir = await mkdtemp(path.join(os.tmpdir(), "tandem-supervisor-"));
  await chmod(jobsDir, 0o711);
});
after(async () => {
  await runtime.killAll();
  await rm(jobsDir, { recursive: true, force: true });
});

type Sent = WorkerMessage & { clusterId: string; attempt: number };

/** A supervisor over the process runtime, with every message it sends and a way to await one. */
function supervised(output = DEFAULT_OUTPUT_LIMITS, secretKey?: DeviceSecretKey) {
  const sent: Sent[] = [];
  const waiters: Array<{ match: (m: Sent) => boolean; resolve: (m: Sent) => void }> = [];
  const supervisor = new JobSupervisor({
    runtime,
    jobsDir,
    python: "/usr/bin/python3",
    gpuIndices: [],
    offer: { memoryMiB: 4096, cpuCores: 2, pids: 4096, diskMiB: 1024 },
    output,
    send: (message) => {
      if (!("attempt" in message)) throw new Error(`unexpected ${message.type}`);
      sent.push(message);
      for (const waiter of waiters.filter((w) => w.match(message))) {
        waiters.splice(waiters.indexOf(waiter), 1);
        waiter.resolve(message);
      }
    },
    log: () => undefined,
    ...(secretKey === undefined ? {} : { secretKey }),
  });
  const next = (match: (m: Sent) => boolean): Promise<Sent> => {
    const seen = sent.find(match);
    if (seen !== undefined) return Promise.resolve(seen);
    return new Promise((resolve) => waiters.push({ match, resolve }));
  };
  const logged = (attempt: number, text: string) =>
    next((m) => m.type === "job-log" && m.attempt === attempt && m.lines.includes(text));
  /** What happened to each run, output left out: "job-accepted 0", "job-exit 0: <error>", … */
  const lifecycle = () =>
    sent.flatMap((m) =>
      m.type === "job-log"
        ? []
        : [
            `${m.type} ${m.attempt}${m.type === "job-exit" && m.error !== null ? `: ${m.error}` : ""}`,
          ],
    );
  return { supervisor, sent, next, logged, lifecycle };
}

function jobStart(attempt: number, script: string, clusterId?: string): JobStartMessage {
  return {
    type: "job-start",
    clusterId: clusterId ?? newId(IdPrefix.cluster),
    rank: 1,
    attempt,
    worldSize: 2,
    kind: "batch",
    command: ["sh", "-c", script],
    env: {},
    image: null,
    head: { address: "127.0.0.1", port: 29_500 },
  };
}

const exists = (p: string) =>
  access(p).then(
    () => true,
    () => false,
  );
const mark = (n: number) => `1000.${process.pid}${n}`;

describe("job supervisor", () => {
  it("runs a rank with its cluster's ask and reports the limit it exceeded in job-exit", async () => {
    const { supervisor, sent } = supervised();
    const start = {
      ...jobStart(
        0,
        "ulimit -f; i=0; while [ $i -lt 40 ]; do head -c 1048576 /dev/zero > f$i; i=$((i+1)); done; exec sleep 1000",
      ),
      limits: { diskMiB: 16 },
    };
    await supervisor.start(start);
    const exit = sent.at(-1);
    assert.ok(exit?.type === "job-exit");
    assert.equal(exit.limitExceeded, "disk");
    assert.equal(exit.error, "exceeded its disk limit on /job (16 MiB)");
    const log = sent.find((m) => m.type === "job-log");
    assert.ok(log?.type === "job-log");
    assert.deepEqual(
      log.lines,
      [String((16 * 1024 * 1024) / 512)],
      "RLIMIT_FSIZE in 512-byte blocks",
    );
  });

  it("refuses an ask beyond the node's offer, starting nothing", async () => {
    const { supervisor, lifecycle } = supervised();
    await supervisor.start({ ...jobStart(0, "echo never"), limits: { memoryMiB: 8192 } });
    assert.deepEqual(lifecycle(), [
      "job-exit 0: the cluster asks memoryMiB 8192, more than this node offers (4096)",
    ]);
  });

  it("echoes the run's attempt in job-accepted, job-log and job-exit", async () => {
    const { supervisor, sent } = supervised();
    await supervisor.start(jobStart(7, "echo out; echo err >&2; exit 3"));
    assert.deepEqual(sent.map((m) => m.type).sort(), [
      "job-accepted",
      "job-exit",
      "job-log",
      "job-log",
    ]);
    assert.deepEqual(
      sent.map((m) => m.attempt),
      [7, 7, 7, 7],
    );
    const exit = sent.at(-1);
    assert.ok(exit?.type === "job-exit");
    assert.equal(exit.exitCode, 3);
  });

  it("reads a flood of output to its end without blocking the job, and sends only what the caps allow", async () => {
    const KiB = 1024;
    const { supervisor, sent } = supervised({
      rateBytesPerSec: 64 * KiB,
      burstBytes: 256 * KiB,
      totalBytes: 1024 * KiB,
      batchDelayMs: 50,
    });
    // 64 MiB as fast as the job can write it, then a line of its own after the flood.
    await supervisor.start(jobStart(0, "yes 0123456789abcdef | head -c 67108864; echo done"));
    const exit = sent.at(-1);
    assert.ok(exit?.type === "job-exit");
    assert.deepEqual([exit.exitCode, exit.signal, exit.error], [0, null, null]);
    const lines = sent.flatMap((m) => (m.type === "job-log" ? m.lines : []));
    const text = lines.filter((l) => !l.startsWith(TRUNCATED));
    assert.ok(text.length > 0 && text.every((l) => l === "0123456789abcdef" || l === "done"));
    assert.ok(text.length * (17 + 32) <= 1024 * KiB, `${text.length} lines sent`);
    assert.match(lines.at(-1) ?? "", /^\[tandem\] output truncated: /);
  });

  it("classes a start failure: the consumer's job spec, or the node's runtime", async () => {
    const { supervisor, sent } = supervised();
    await supervisor.start({ ...jobStart(0, "true"), command: ["sh", "-c", "a\0b"] });
    // A container on a worker without podman: the node cannot run what was placed on it.
    await supervisor.start({ ...jobStart(0, "true"), kind: "container", image: "localhost/x:1" });
    assert.deepEqual(
      sent.map((m) => (m.type === "job-exit" ? [m.exitCode, m.startFailure] : m.type)),
      [
        [null, "invalid-job"],
        [null, "start-failed"],
      ],
    );
  });

  it("writes the cluster's TLS files with the opened key; a key sealed to another device is the node's start failure", async () => {
    const seed = ed25519.utils.randomSecretKey();
    const nodeId = newId(IdPrefix.node);
    const { supervisor, sent, next } = supervised(DEFAULT_OUTPUT_LIMITS, { seed, nodeId });
    const pem = "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n";
    const withKeyFor = (publicKey: Uint8Array): JobStartMessage => {
      const start = jobStart(0, "cat .tandem/tls/key.pem; echo; stat -c %a .tandem/tls/key.pem");
      const binding = { clusterId: start.clusterId, nodeId, name: CLUSTER_TLS_KEY_NAME };
      const key = sealSecret(Buffer.from(publicKey).toString("base64url"), binding, "the-key");
      return { ...start, tls: { caCert: pem, cert: pem, key } };
    };
    const ours = withKeyFor(ed25519.getPublicKey(seed));
    await supervisor.start(ours);
    const exit = await next((m) => m.type === "job-exit" && m.clusterId === ours.clusterId);
    assert.equal(exit.type === "job-exit" && exit.exitCode, 0);
    const out = sent.flatMap((m) =>
      m.type === "job-log" && m.clusterId === ours.clusterId ? m.lines : [],
    );
    assert.deepEqual(out, ["the-key", "600"]);

    const theirs = withKeyFor(ed25519.getPublicKey(ed25519.utils.randomSecretKey()));
    await supervisor.start(theirs);
    const refused = await next((m) => m.type === "job-exit" && m.clusterId === theirs.clusterId);
    assert.deepEqual(
      refused.type === "job-exit" && [
        refused.exitCode,
        refused.startFailure,
        refused.secretsRefused,
        refused.error,
      ],
      [null, "start-failed", undefined, "the cluster's TLS key does not open on this device"],
    );
  });

  it("ignores a resent job-start of the running attempt, and a stale one", async () => {
    const { supervisor, logged, lifecycle } = supervised();
    const start = jobStart(2, `echo ready; exec sleep ${mark(11)}`);
    const run = supervisor.start(start);
    await logged(2, "ready");
    await supervisor.start(start);
    await supervisor.start({ ...start, attempt: 1 });
    assert.equal((await sleepersAtLeast(mark(11), 1)).length, 1);
    await supervisor.stop(start.clusterId);
    await run;
    assert.deepEqual(lifecycle(), ["job-accepted 2", "job-exit 2"]);
    assert.equal(supervisor.activeClusters, 0);
  });

  it("restarts a rank for a higher attempt in the same job dir, which outlives the old run", async () => {
    const { supervisor, sent, next, logged, lifecycle } = supervised();
    const first = jobStart(
      0,
      `echo step-41 > checkpoint; echo ready; trap 'echo saving; exit 143' TERM; sleep ${mark(21)} & wait`,
    );
    const jobDir = path.join(jobsDir, first.clusterId);
    const firstRun = supervisor.start(first);
    await logged(0, "ready");
    assert.equal((await sleepersAtLeast(mark(21), 1)).length, 1);

    const second = {
      ...first,
      attempt: 1,
      command: ["sh", "-c", `echo resumed-from-$(cat checkpoint); exec sleep ${mark(22)}`],
    };
    const secondRun = supervisor.start(second);
    await firstRun;
    await logged(1, "resumed-from-step-41");
    assert.deepEqual(await processesWith(`sleep\0${mark(21)}\0`), []);
    assert.equal((await sleepersAtLeast(mark(22), 1)).length, 1);

    // The old run's job-exit went out under its own attempt, before the new run was accepted,
    // and its cleanup left the new run's entry and dir alone.
    assert.deepEqual(lifecycle(), ["job-accepted 0", "job-exit 0", "job-accepted 1"]);
    assert.ok(
      sent.some((m) => m.type === "job-log" && m.attempt === 0 && m.lines.includes("saving")),
    );
    assert.equal(supervisor.activeClusters, 1);
    assert.equal(await exists(path.join(jobDir, "checkpoint")), true);
    await supervisor.start(second);
    assert.equal((await sleepersAtLeast(mark(22), 1)).length, 1);

    await supervisor.stop(first.clusterId);
    await secondRun;
    const exit = await next((m) => m.type === "job-exit" && m.attempt === 1);
    assert.ok(exit.type === "job-exit");
    assert.equal(exit.signal, "SIGTERM");
    assert.equal(await exists(jobDir), false);
    assert.equal(supervisor.activeClusters, 0);
  });

  it("a newer attempt that is stopped while the old run ends never starts", async () => {
    const { supervisor, logged, lifecycle } = supervised();
    const first = jobStart(0, `echo ready; exec sleep ${mark(31)}`);
    const firstRun = supervisor.start(first);
    await logged(0, "ready");
    const secondRun = supervisor.start({ ...first, attempt: 1 });
    const stopped = supervisor.stop(first.clusterId);
    await Promise.all([firstRun, secondRun, stopped]);
    assert.deepEqual(lifecycle(), [
      "job-accepted 0",
      "job-exit 0",
      "job-exit 1: stopped before it started",
    ]);
    assert.equal(await exists(path.join(jobsDir, first.clusterId)), false);
  });

  it("removes the job dir when the newest run ends by itself", async () => {
    const { supervisor } = supervised();
    const start = jobStart(4, "echo data > file; exit 0");
    await supervisor.start(start);
    assert.equal(await exists(path.join(jobsDir, start.clusterId)), false);
    assert.equal(supervisor.activeClusters, 0);
  });

  it("stopAll (self-fencing) ends every running job's processes and says how many", async () => {
    const { supervisor, sent, logged } = supervised();
    const a = jobStart(0, `echo ready; sleep ${mark(41)} & sleep ${mark(41)} & wait`);
    const b = jobStart(3, `echo ready; exec sleep ${mark(41)}`);
    const runs = [supervisor.start(a), supervisor.start(b)];
    await Promise.all([logged(0, "ready"), logged(3, "ready")]);
    assert.equal((await sleepersAtLeast(mark(41), 3)).length, 3);

    assert.equal(await supervisor.stopAll({ graceMs: 100 }), 2);
    assert.deepEqual(await processesWith(`sleep\0${mark(41)}\0`), []);
    await Promise.all(runs);
    const exits = sent.filter((m) => m.type === "job-exit");
    assert.deepEqual(exits.map((m) => m.attempt).sort(), [0, 3]);
    assert.equal(supervisor.activeClusters, 0);
    assert.equal(await supervisor.stopAll(), 0);
  });
});
