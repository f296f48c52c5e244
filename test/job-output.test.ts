// Job output on the coordinator (scheduler/log-writer.ts), with simulated workers over real
// WebSockets on a manual clock: stored off the message path in batches, capped per rank with one
// closing note, only from a node's own runs, and complete by the time a cluster shows it ended;
// `tandem cluster logs --limit` reads them a page at a time.
import assert from "node:assert/strict";
import { it } from "node:test";
import type { WorkerMessage } from "../src/protocol/worker-messages.ts";
import pino from "pino";
import { CoordinatorEvents } from "../src/coordinator/events.ts";
import { DEFAULT_LOG_WRITER_OPTIONS, LogWriter } from "../src/coordinator/scheduler/log-writer.ts";
import { IdPrefix, newId } from "../src/protocol/ids.ts";
import { forEachDatabase, type DatabaseUnderTest } from "./support/coordinator.ts";
import { consumerCli, simulatedNetwork } from "./support/simulated-network.ts";

const KiB = 1024;
const MAX_BYTES_PER_RANK = 64 * KiB;

async function setup(
  db: DatabaseUnderTest,
  t: { after(fn: () => unknown): void },
  maxLogBytesPerRank = MAX_BYTES_PER_RANK,
) {
  const net = await simulatedNetwork(db, t, 2, { maxLogBytesPerRank });
  const { client, clock } = net;
  const cluster = await client.deployCluster({
    kind: "batch",
    nodes: 1,
    hours: 1,
    gpuModel: "cpu",
    command: ["true"],
  });
  const worker = net.roleOf(await client.getCluster(cluster.id), 0);
  const other = net.pool.find((w) => w !== worker)!;
  await net.nextStart(worker);
  const run = { clusterId: cluster.id, rank: 0, attempt: 0 };
  worker.send({ type: "job-accepted", ...run, port: 29_500 });
  await net.until(cluster.id, (v) => v.status === "running", "ran");
  const log = (lines: string[], stream: "stdout" | "stderr" = "stdout"): WorkerMessage => ({
    type: "job-log",
    ...run,
    stream,
    lines,
  });
  /** Every stored line, in order. */
  const stored = async () => {
    const lines: string[] = [];
    for (let after = 0; ;) {
      const { items } = await client.clusterLogs(cluster.id, { limit: 5000, after });
      if (items.length === 0) return lines;
      lines.push(...items.map((l) => l.text));
      after = items.at(-1)!.seq;
    }
  };
  /** Once taken in, every message the worker sent before has been handled. */
  const heard = () => net.beat([worker]);
  const { logs } = net.net.coordinator;
  return { clock, net, client, cluster, worker, other, run, log, stored, logs, heard };
}

forEachDatabase("job output", (db) => {
  it("stores a rank's output in order, up to its cap, closed by one note", async (t) => {
    const s = await setup(db, t);
    // 100 messages of 10 lines of 100 bytes: 132 KiB against the rank's 64 KiB.
    for (let m = 0; m < 100; m++)
      s.worker.send(s.log(Array.from({ length: 10 }, (_, i) => `${m * 10 + i}:`.padEnd(100, "x"))));
    s.worker.send(s.log(["on stderr"], "stderr"));
    await waitStored(s, (lines) => lines.some((l) => l.startsWith("[tandem]")));
    await s.logs.idle();
    const lines = await s.stored();
    const text = lines.slice(0, -1);
    assert.deepEqual(
      text,
      Array.from({ length: text.length }, (_, i) => `${i}:`.padEnd(100, "x")),
    );
    assert.equal(text.length, Math.floor(MAX_BYTES_PER_RANK / (100 + 32)));
    assert.equal(
      lines.at(-1),
      `[tandem] output truncated: the coordinator stores at most ${MAX_BYTES_PER_RANK} bytes of rank 0's output; later output is not stored`,
    );
  });

  it("stores only a node's own runs, and a run's late output for a while after it ended", async (t) => {
    const s = await setup(db, t, 64 * 1024 * 1024);
    s.other.send(s.log(["not mine"]));
    s.worker.send(s.log(["mine"]));
    s.worker.send({ ...s.log(["stale attempt"]), attempt: 1 });
    // Output naming clusters that are nobody's here is dropped and holds no memory.
    for (let i = 0; i < 20; i++)
      s.worker.send({ ...s.log(["invented"]), clusterId: newId(IdPrefix.cluster) });
    await s.heard();
    await s.logs.idle();
    assert.deepEqual(await s.stored(), ["mine"]);
    assert.equal(s.logs.trackedClusters, 1);

    // The output sent before the exit is stored by the time the cluster shows it ended.
    // 25,000 lines: five of the writer's transactions.
    const lines = Array.from({ length: 500 }, (_, i) => `line ${i}`);
    for (let i = 0; i < 49; i++) s.worker.send(s.log(lines));
    s.worker.send(s.log([...lines.slice(1), "before exit"]));
    s.worker.send({ type: "job-exit", ...s.run, exitCode: 0, signal: null, error: null });
    await s.net.until(s.cluster.id, (v) => v.status === "completed", "completed");
    const atEnd = await s.stored();
    assert.equal(atEnd.length, 25_001);
    assert.equal(atEnd.at(-1), "before exit");

    // Output overtaken by the exit still lands within the grace; later output does not.
    s.worker.send(s.log(["late"]));
    await waitStored(s, (lines) => lines.includes("late"));
    s.clock.advance(61_000);
    s.worker.send(s.log(["too late"]));
    await s.heard();
    await s.logs.idle();
    assert.equal((await s.stored()).at(-1), "late");
  });

  it("holds a bounded queue: what arrives while the writer is behind is dropped, then noted", async (t) => {
    const s = await setup(db, t, 64 * 1024 * 1024);
    const { coordinator } = s.net.net;
    const writer = new LogWriter(
      {
        db: coordinator.store.db,
        clock: s.clock,
        logger: pino({ level: "silent" }),
        events: new CoordinatorEvents(),
      },
      { ...DEFAULT_LOG_WRITER_OPTIONS, maxLinesPerCluster: 200_000, maxQueuedBytes: 40 * KiB },
    );
    // All offered in one turn, before the writer can store any: 10 KiB a message, 40 KiB queued.
    const line = "y".repeat(1024 - 32);
    for (let m = 0; m < 10; m++)
      writer.offer(s.worker.nodeId, {
        type: "job-log",
        ...s.run,
        stream: "stdout",
        lines: Array.from({ length: 10 }, (_, i) => `${m}/${i} ${line}`.slice(0, line.length)),
      });
    await writer.idle();
    const lines = await s.stored();
    assert.equal(lines.length, 4 * 10 + 1);
    assert.ok(lines.slice(0, 40).every((l, i) => l.startsWith(`${Math.floor(i / 10)}/${i % 10} `)));
    assert.equal(
      lines.at(-1),
      "[tandem] output truncated: 60 lines not stored: the coordinator's log writer was behind",
    );
  });
  it("`tandem cluster logs --limit` prints one page and how to go on", async (t) => {
    if (db.kind !== "sqlite") return; // the CLI only reads the API: one database is enough
    const s = await setup(db, t);
    s.worker.send(s.log(["l0", "l1", "l2", "l3", "l4"]));
    await waitStored(s, (lines) => lines.length === 5);
    const seqs = (await s.client.clusterLogs(s.cluster.id)).items.map((l) => l.seq);
    const cli = await consumerCli(s.net, t);
    const logs = (...args: string[]) => cli(["cluster", "logs", s.cluster.id, ...args]);
    const more = (after: number) =>
      `more: tandem cluster logs ${s.cluster.id} --after ${after} --limit 2`;

    const first = await logs("--limit", "2");
    assert.equal(first.code, 0, first.out);
    assert.match(first.out, /\[0\] l0\n\[0\] l1\n/);
    assert.doesNotMatch(first.out, /l2/);
    assert.ok(first.out.includes(more(seqs[1]!)), first.out);
    const second = await logs("--after", String(seqs[1]), "--limit", "2");
    assert.match(second.out, /\[0\] l2\n\[0\] l3\n/);
    assert.ok(second.out.includes(more(seqs[3]!)), second.out);
    const last = await logs("--after", String(seqs[3]), "--limit", "2");
    assert.equal(last.code, 0, last.out);
    assert.match(last.out, /^\[0\] l4$/m);
    assert.doesNotMatch(last.out, /more:/);
    const exact = await logs("--limit", "5");
    assert.doesNotMatch(exact.out, /more:/, "a full last page has no hint");
    assert.notEqual((await logs("--limit", "2", "--follow")).code, 0);
    assert.notEqual((await logs("--limit", "0")).code, 0);
  });
});

async function waitStored(
  s: { stored: () => Promise<string[]> },
  ready: (lines: string[]) => boolean,
): Promise<void> {
  for (let i = 0; i < 1000; i++) {
    if (ready(await s.stored())) return;
    await new Promise((r) => setTimeout(r, 10));
  }
  throw new Error("the output was never stored");
}
