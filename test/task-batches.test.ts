// Task batches (issue 20, item 3): many tasks in one request, queued in order in one transaction,
// all or none; every task of a batch runs and reports its own exit. Bad batches are refused whole
// with a typed 4xx. The CLI submits a file (or stdin) of commands, one a line.
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, it } from "node:test";
import { MAX_TASKS_PER_SUBMIT } from "../src/protocol/clusters.ts";
import { taskBatches, taskCommands } from "../src/cli/commands/task-file.ts";
import { assertError, forEachDatabase, httpRequest } from "./support/coordinator.ts";
import { TANDEM_BIN } from "./support/processes.ts";
import {
  simulatedNetwork,
  type JobStart,
  type SimulatedNetwork,
  type Worker,
} from "./support/simulated-network.ts";

let home: string;
before(async () => (home = await mkdtemp(join(tmpdir(), "tandem-tasks-"))));
after(() => rm(home, { recursive: true, force: true }));

/** An autoscaled batch cluster of 1..max nodes, one task per node; its first task is `true`. */
async function queueCluster(s: SimulatedNetwork, max: number) {
  return s.client.deployCluster({
    kind: "batch",
    nodes: 1,
    hours: 1,
    gpuModel: "cpu",
    command: ["true"],
    autoscale: { min: 1, max, tasksPerNode: 1 },
  });
}

/**
 * The worker runs the task (or task run) it was given: each task exits with `exitOf(seq)`; a task
 * of a run whose exit is undefined never ends by itself.
 */
function finish(
  worker: Worker,
  clusterId: string,
  start: JobStart,
  exitOf: (seq: number) => number | undefined,
) {
  worker.send({
    type: "job-accepted",
    clusterId,
    rank: start.rank,
    attempt: start.attempt,
    port: null,
  });
  const taskExits = start.tasks
    ?.map((t) => ({ seq: t.seq, exitCode: exitOf(t.seq) ?? null }))
    .filter((e) => e.exitCode !== null);
  worker.send({
    type: "job-exit",
    clusterId,
    rank: start.rank,
    attempt: start.attempt,
    exitCode: start.tasks === undefined ? exitOf(start.attempt)! : 0,
    signal: null,
    error: null,
    ...(taskExits === undefined ? {} : { taskExits }),
  });
}

/** `tandem args…` with `stdin` on standard input: its exit status and output. */
function tandem(s: SimulatedNetwork, args: string[], stdin = "") {
  const child = spawn(process.execPath, [TANDEM_BIN, ...args], {
    env: {
      PATH: process.env.PATH ?? "/usr/bin:/bin",
      HOME: home,
      TANDEM_HOME: home,
      TANDEM_URL: s.net.url,
      TANDEM_API_KEY: s.consumer.apiKey,
    },
    stdio: ["pipe", "pipe", "pipe"],
  });
  let stdout = "";
  let stderr = "";
  child.stdout.on("data", (d: Buffer) => (stdout += d.toString()));
  child.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
  child.stdin.end(stdin);
  return new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve) =>
    child.once("close", (code) => resolve({ code, stdout, stderr })),
  );
}

it("a task file is one `sh -c` command a line, blank and # lines skipped, in request slices", () => {
  assert.deepEqual(taskCommands("echo a\r\n\n  # note\necho 'b c' | wc -c\n"), [
    ["sh", "-c", "echo a"],
    ["sh", "-c", "echo 'b c' | wc -c"],
  ]);
  const many = Array.from({ length: MAX_TASKS_PER_SUBMIT * 2 + 1 }, (_, i) => ["t", String(i)]);
  assert.deepEqual(
    taskBatches(many).map((b) => [b.length, b[0]![1]]),
    [
      [MAX_TASKS_PER_SUBMIT, "0"],
      [MAX_TASKS_PER_SUBMIT, String(MAX_TASKS_PER_SUBMIT)],
      [1, String(MAX_TASKS_PER_SUBMIT * 2)],
    ],
  );
});

forEachDatabase("task batches", (db) => {
  it("queues a batch in order in one request; every task runs and reports its own exit", async (t) => {
    const s = await simulatedNetwork(db, t, 2);
    const cluster = await queueCluster(s, 2);
    const commands = [1, 2, 3, 4, 5].map((i) => ["sh", "-c", `exit ${i % 2 === 0 ? i : 0}`]);
    const batch = await s.client.submitTasks(cluster.id, commands);
    assert.deepEqual(batch, { count: 5, firstSeq: 2, lastSeq: 6 });
    const queued = await s.client.clusterTasks(cluster.id);
    assert.deepEqual(
      queued.items.slice(1).map((x) => [x.seq, x.command]),
      commands.map((c, i) => [i + 2, c]),
      "queued in the order given",
    );

    // Each node runs whatever it is given until every task has run once.
    const exits = new Map<number, number>([[1, 0]]);
    for (const [i, c] of commands.entries()) exits.set(i + 2, Number(/\d+$/.exec(c[2]!)![0]));
    const ran: number[] = [];
    const starts: JobStart[] = [];
    const runner = async (worker: Worker) => {
      while (ran.length < 6) {
        const start = await s.nextStart(worker);
        starts.push(start);
        ran.push(...(start.tasks?.map((t) => t.seq) ?? [start.attempt]));
        finish(worker, cluster.id, start, (seq) => exits.get(seq));
      }
    };
    await Promise.race([Promise.all(s.pool.map(runner)), waitAllEnded(s, cluster.id)]);
    const tasks = await waitAllEnded(s, cluster.id);
    assert.deepEqual(
      tasks.map((x) => [x.seq, x.status, x.exitCode]),
      [
        [1, "done", 0],
        [2, "done", 0],
        [3, "failed", 2],
        [4, "done", 0],
        [5, "failed", 4],
        [6, "done", 0],
      ],
    );
    assert.deepEqual(
      [...ran].sort((a, b) => a - b),
      [1, 2, 3, 4, 5, 6],
      "each task ran exactly once",
    );
    // The idle node took the queued tasks in one run, each with its own command, in order.
    const run = starts.find((m) => m.tasks !== undefined)!;
    assert.deepEqual(
      run.tasks!.map((t) => [t.seq, t.command]),
      commands.map((c, i) => [i + 2, c]),
    );
    assert.equal(run.attempt, 2, "a run's attempt is its first task");
    const view = await s.client.getCluster(cluster.id);
    const ended = view.events.filter((e) => e.type === "task-ended");
    assert.deepEqual(
      ended
        .map((e) => [e.detail.task, e.detail.exitCode])
        .sort((a, b) => Number(a[0]) - Number(b[0])),
      [...exits.entries()],
      "one task-ended event per task, with its own exit",
    );
  });

  it("a task of a run that never ended fails with no exit; a lost run's tasks are queued again", async (t) => {
    const s = await simulatedNetwork(db, t, 2);
    const cluster = await queueCluster(s, 1);
    const node = s.byNode(cluster.nodes[0]!.nodeId);
    const first = await s.nextStart(node);
    await s.client.submitTasks(cluster.id, [
      ["echo", "2"],
      ["echo", "3"],
      ["echo", "4"],
    ]);
    finish(node, cluster.id, first, () => 0);
    const run = await s.nextStart(node);
    assert.deepEqual(
      run.tasks?.map((x) => x.seq),
      [2, 3, 4],
    );
    // Task 2 ended; the run was stopped during task 3 (4 never started).
    finish(node, cluster.id, run, (seq) => (seq === 2 ? 0 : undefined));
    const tasks = await waitAllEnded(s, cluster.id);
    assert.deepEqual(
      tasks.map((x) => [x.seq, x.status, x.exitCode]),
      [
        [1, "done", 0],
        [2, "done", 0],
        [3, "failed", null],
        [4, "failed", null],
      ],
    );

    // A node lost in the middle of a run: every task of the run goes back to the queue, and the
    // node that takes it over runs them all again.
    await s.client.submitTasks(cluster.id, [
      ["echo", "5"],
      ["echo", "6"],
    ]);
    const lostRun = await s.nextStart(node);
    assert.deepEqual(
      lostRun.tasks?.map((x) => x.seq),
      [5, 6],
    );
    node.send({
      type: "job-accepted",
      clusterId: cluster.id,
      rank: lostRun.rank,
      attempt: lostRun.attempt,
      port: null,
    });
    await s.silence(node);
    const other = s.pool.find((w) => w !== node)!;
    const again = await s.nextStart(other);
    assert.deepEqual(
      again.tasks?.map((x) => x.seq),
      [5, 6],
    );
    finish(other, cluster.id, again, () => 0);
    const after = await waitAllEnded(s, cluster.id);
    assert.deepEqual(
      after.slice(4).map((x) => [x.seq, x.status, x.nodeId]),
      [
        [5, "done", other.nodeId],
        [6, "done", other.nodeId],
      ],
    );
  });

  it("refuses an empty, oversized or malformed batch whole, with nothing queued", async (t) => {
    const s = await simulatedNetwork(db, t, 1);
    const cluster = await queueCluster(s, 1);
    const post = (body: unknown) =>
      httpRequest(s.net.url, "POST", `/v1/clusters/${cluster.id}/tasks/batch`, {
        apiKey: s.consumer.apiKey,
        body,
      });
    const bad: Array<[string, unknown]> = [
      ["empty", { commands: [] }],
      ["too many", { commands: Array.from({ length: MAX_TASKS_PER_SUBMIT + 1 }, () => ["true"]) }],
      ["an empty command", { commands: [["true"], []] }],
      ["a control character", { commands: [["true"], ["echo", "a\u0000b"]] }],
      ["not a list of arguments", { commands: [["true"], "echo hi"] }],
      ["an unknown field", { commands: [["true"]], priority: 1 }],
    ];
    for (const [what, body] of bad) assertError(await post(body), 400, "VALIDATION_FAILED", what);
    assert.deepEqual(
      (await s.client.clusterTasks(cluster.id)).items.map((x) => x.seq),
      [1],
      "nothing queued",
    );

    // Not the caller's cluster, or no queue: refused too.
    const other = await s.net.signUp(["consumer"]);
    const foreign = await httpRequest(s.net.url, "POST", `/v1/clusters/${cluster.id}/tasks/batch`, {
      apiKey: other.apiKey,
      body: { commands: [["true"]] },
    });
    assert.ok(foreign.status === 403 || foreign.status === 404, foreign.text);
    assert.deepEqual(
      (await s.client.clusterTasks(cluster.id)).items.map((x) => x.seq),
      [1],
      "nothing queued",
    );
  });

  it("counts a batch once against the rate limit", async (t) => {
    const s = await simulatedNetwork(db, t, 1, { rateLimitPerMinute: 8 });
    const cluster = await queueCluster(s, 1);
    // The sign-up, deposit and deploy took some of the 8; one batch of 200 still goes through.
    const batch = await s.client.submitTasks(
      cluster.id,
      Array.from({ length: 200 }, (_, i) => ["echo", String(i)]),
    );
    assert.equal(batch.count, 200);
  });
});

forEachDatabase("tandem cluster submit --file", (db) => {
  it("queues a file's lines, or stdin's, as tasks; refuses an empty file", async (t) => {
    const s = await simulatedNetwork(db, t, 1);
    const cluster = await queueCluster(s, 1);
    const file = join(home, `tasks-${db.kind}.txt`);
    await writeFile(file, "echo one\n\n# skipped\necho 'two words' > out.txt\n");
    const fromFile = await tandem(s, ["cluster", "submit", cluster.id, "--file", file]);
    assert.equal(fromFile.code, 0, fromFile.stderr);
    assert.match(fromFile.stdout, new RegExp(`2 tasks queued on ${cluster.id} \\(tasks 2-3\\)`));

    const fromStdin = await tandem(
      s,
      ["cluster", "submit", cluster.id, "--file", "-", "--json"],
      "echo three\n",
    );
    assert.equal(fromStdin.code, 0, fromStdin.stderr);
    assert.equal((JSON.parse(fromStdin.stdout) as { firstSeq: number }).firstSeq, 4);

    const empty = await tandem(s, ["cluster", "submit", cluster.id, "--file", "-"], "\n# none\n");
    assert.equal(empty.code, 1);
    assert.match(empty.stderr, /no tasks in -/);
    const both = await tandem(s, ["cluster", "submit", cluster.id, "--file", file, "--", "true"]);
    assert.equal(both.code, 1);
    assert.match(both.stderr, /either a command or --file/);

    assert.deepEqual(
      (await s.client.clusterTasks(cluster.id)).items.map((x) => x.command),
      [
        ["true"],
        ["sh", "-c", "echo one"],
        ["sh", "-c", "echo 'two words' > out.txt"],
        ["sh", "-c", "echo three"],
      ],
    );
  });
});

/** The cluster's tasks once none is queued or running. */
async function waitAllEnded(s: SimulatedNetwork, clusterId: string) {
  for (const deadline = Date.now() + 30_000; Date.now() < deadline;) {
    const tasks = (await s.client.clusterTasks(clusterId)).items;
    if (tasks.every((x) => x.status !== "queued" && x.status !== "running")) return tasks;
    await new Promise((r) => setTimeout(r, 10));
  }
  throw new Error(`cluster ${clusterId}'s tasks never all ended`);
}
