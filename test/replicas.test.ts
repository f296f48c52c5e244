// Many coordinators on one PostgreSQL (issue 19 item 5, DESIGN.md §7): one replica at a time leads
// the singleton loops (settlement, expiry, uptime) under an advisory lock; a new leader moves the
// term, and every transaction a former leader's loop starts after that is refused (FENCED_OUT) —
// while the election itself waits for the writes already past the check. Replicas in process for
// the fence, as real processes for SIGKILL and SIGSTOP.
import assert from "node:assert/strict";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, it, type TestContext } from "node:test";
import pg from "pg";
import { TandemClient } from "../src/client/client.ts";
import { TandemError } from "../src/core/errors.ts";
import { runFenced } from "../src/coordinator/store/leader-fence.ts";
import { runInTransaction } from "../src/coordinator/store/transaction.ts";
import { freshPostgresDatabase, startTestCoordinator } from "./support/coordinator.ts";
import { postgresForTests } from "./support/postgres.ts";
import { availableWorker, enrollmentEnv, fund } from "./support/workers.ts";
import { CloseCode } from "../src/protocol/worker-messages.ts";
import {
  eventually,
  spawnTandem,
  startCoordinatorProcess,
  type TandemProcess,
} from "./support/processes.ts";

const server = await postgresForTests();
/** Fast elections, so the tests wait little: a follower polls every 100 ms, a lease is 1 s. */
const FAST_ELECTION = { leaderPollMs: 100, leaderLeaseMs: 1000 };
/** Replicas that say they are alive every 100 ms and count one silent for 500 ms as dead. */
const FAST_REPLICAS = { ...FAST_ELECTION, replicaAliveMs: 100, replicaDeadAfterMs: 500 };

describe("one coordinator on SQLite", () => {
  it("leads alone, with no term to fence", async (t) => {
    const net = await startTestCoordinator({ database: "sqlite" });
    t.after(() => net.close());
    const { replica } = await net.client().health();
    assert.match(replica.id, /^rep_/);
    assert.deepEqual({ leader: replica.leader, term: replica.term }, { leader: true, term: null });
    assert.equal(await net.coordinator.ticker.tick(), true);
  });
});

describe("replicas on one PostgreSQL", { skip: server.skip ? server.reason : false }, () => {
  after(() => (server.skip ? undefined : server.stop()));
  const pgUrl = server.skip ? "" : server.url;

  /** Two replicas on one fresh database (the first leads); workers beat only when told. */
  async function replicaPair(t: TestContext) {
    const first = await startTestCoordinator({
      database: "postgres",
      pgUrl,
      config: { ...FAST_REPLICAS, heartbeatIntervalMs: 60_000 },
    });
    t.after(() => first.close());
    const second = await first.replica();
    t.after(() => second.close());
    return { first, second };
  }

  it("lets one replica lead; a follower's tick does nothing; closing the leader hands the lead on", async (t) => {
    const { first, second } = await replicaPair(t);

    const term = first.coordinator.leadership.term;
    assert.ok(term !== undefined, "the first replica leads");
    assert.equal(second.coordinator.leadership.leading, false);
    assert.equal(await second.coordinator.ticker.tick(), false);
    assert.equal(await first.coordinator.ticker.tick(), true);
    const health = await second.client().health();
    assert.deepEqual(
      { leader: health.replica.leader, term: health.replica.term },
      { leader: false, term: null },
    );

    await first.close();
    const next = await eventually(
      () => Promise.resolve(second.coordinator.leadership.term),
      "the second replica to lead",
    );
    assert.equal(next, term + 1);
    assert.equal(await second.coordinator.ticker.tick(), true);
  });

  it("refuses a former term's writes once a new term is in, and elects only after those under way", async (t) => {
    const { first, second } = await replicaPair(t);
    const db = first.coordinator.store.db;
    const term = first.coordinator.leadership.term;
    assert.ok(term !== undefined);
    const writeAccount = (id: string) =>
      runFenced(term, () =>
        runInTransaction(db, async (tx) => {
          await tx.insertInto("accounts").values({ id, roles: "[]", created_at: 1 }).execute();
        }),
      );

    // A write of the first leader is past the fence check (it holds the leader row shared)...
    let release!: () => void;
    const gate = new Promise<void>((resolve) => (release = resolve));
    let checked!: () => void;
    const pastCheck = new Promise<void>((resolve) => (checked = resolve));
    const underWay = runFenced(term, () =>
      runInTransaction(db, async (tx) => {
        checked();
        await gate;
        await tx
          .insertInto("accounts")
          .values({ id: "acct_under_way", roles: "[]", created_at: 1 })
          .execute();
      }),
    );
    await pastCheck;
    // ...when the server ends the leader's session (as it does one silent past its lease).
    const admin = new pg.Client({ connectionString: first.databaseUrl });
    await admin.connect();
    t.after(() => admin.end());
    await admin.query(
      "select pg_terminate_backend(pid) from pg_locks where locktype = 'advisory' and granted",
    );
    // A replica (either: the first may win its lock back) takes the lock, but moving the term
    // waits for that write...
    await eventually(async () => {
      const waiting = await admin.query(
        "select 1 from pg_stat_activity where wait_event_type = 'Lock' and query like 'update coordinator_leader%'",
      );
      return waiting.rowCount === 1 ? true : undefined;
    }, "the election to wait on the write under way");
    const replicas = [first.coordinator.leadership, second.coordinator.leadership];
    assert.deepEqual(
      replicas.map((r) => r.leading),
      [false, false],
    );
    // ...which commits; then the new term is in, and the former term writes no more.
    release();
    await underWay;
    const next = await eventually(
      () => Promise.resolve(replicas.find((r) => r.leading)?.term),
      "a replica to lead",
    );
    assert.equal(next, term + 1);
    await assert.rejects(
      writeAccount("acct_too_late"),
      (error) => error instanceof TandemError && error.code === "FENCED_OUT",
    );
    const ids = await db
      .selectFrom("accounts")
      .select("id")
      .where("id", "in", ["acct_under_way", "acct_too_late"])
      .execute();
    assert.deepEqual(
      ids.map((r) => r.id),
      ["acct_under_way"],
    );
  });

  /** Two replicas, a supplier and a funded consumer; workers beat only when told. */
  async function twoReplicas(t: TestContext) {
    const { first, second } = await replicaPair(t);
    const supplier = await first.signUp(["supplier"]);
    const consumer = await first.signUp(["consumer"]);
    await fund(first, consumer.accountId, "10");
    return { first, second, supplier, consumer };
  }

  it("deploys through one replica onto a worker held by another; a worker that moves is watched only where it is", async (t) => {
    const { first, second, supplier, consumer } = await twoReplicas(t);
    const worker = await availableWorker(first, supplier.apiKey, "eu-west-a");
    t.after(() => worker.socket.terminate());
    const viaSecond = second.client(consumer.apiKey);

    // The second replica hears of the node proven through the first, and places it.
    await eventually(async () => {
      const { offers } = await viaSecond.search({ nodes: 1, gpuModel: "cpu" });
      return offers.length === 1 ? true : undefined;
    }, "the second replica to see the node available");
    const cluster = await viaSecond.deployCluster({
      kind: "batch",
      nodes: 1,
      hours: 1,
      gpuModel: "cpu",
      command: ["true"],
    });
    // Its start reaches the worker through the first replica, which holds its connection...
    const start = await worker.next();
    assert.ok(start.type === "job-start", `expected a job-start, got ${start.type}`);
    assert.deepEqual([start.clusterId, start.rank, start.attempt], [cluster.id, 0, 0]);
    // ...and what the worker reports there ends the cluster seen through the second.
    worker.send({ type: "job-accepted", clusterId: cluster.id, rank: 0, attempt: 0, port: 29_500 });
    worker.send({
      type: "job-exit",
      clusterId: cluster.id,
      rank: 0,
      attempt: 0,
      exitCode: 0,
      signal: null,
      error: null,
    });
    const answers = [await worker.next(), await worker.next()];
    assert.deepEqual(answers.map((m) => m.type).sort(), ["job-exit-ack", "job-stop"]);
    await eventually(async () => {
      const { status } = await viaSecond.getCluster(cluster.id);
      return status === "completed" ? true : undefined;
    }, "the cluster to complete");

    // The worker connects to the second replica: the first closes its older connection and no
    // longer watches it (its silence there is no failure).
    const moved = await worker.reconnect(second.url);
    t.after(() => moved.socket.terminate());
    assert.equal((await worker.closed()).code, CloseCode.replaced);
    await eventually(
      () =>
        Promise.resolve(
          first.coordinator.gateway.detector.isWatched(worker.nodeId) ? undefined : true,
        ),
      "the first replica to stop watching the worker",
    );
    assert.equal(second.coordinator.gateway.holds(worker.nodeId), true);
  });

  it("keeps a worker's latest connection when word of an older one elsewhere arrives late", async (t) => {
    const { first, second, supplier } = await twoReplicas(t);
    const worker = await availableWorker(first, supplier.apiKey, "eu-west-a");
    t.after(() => worker.socket.terminate());
    const moved = await worker.reconnect(second.url);
    t.after(() => moved.socket.terminate());
    assert.equal((await worker.closed()).code, CloseCode.replaced);
    const connectedAt = second.coordinator.gateway.connectedAtMs(worker.nodeId);
    assert.ok(connectedAt !== undefined, "the second replica holds the worker");

    // Notices of two replicas arrive in either order: the first's word of its own (older)
    // connection, arriving now, must not close the worker's newer one at the second.
    const bus = new pg.Client({ connectionString: second.databaseUrl ?? "" });
    await bus.connect();
    t.after(() => bus.end());
    const connectedNotice = (atMs: number) =>
      bus.query("select pg_notify('tandem_replicas', $1)", [
        JSON.stringify([
          {
            type: "connected",
            replicaId: first.coordinator.leadership.replicaId,
            nodeId: worker.nodeId,
            atMs,
            address: "127.0.0.1",
            behindNat: false,
          },
        ]),
      ]);
    await connectedNotice(connectedAt - 1);
    await new Promise((resolve) => setTimeout(resolve, 300));
    assert.equal(second.coordinator.gateway.holds(worker.nodeId), true);
    assert.equal(moved.socket.readyState, moved.socket.OPEN);

    // Word of a connection there after this one does move it.
    await connectedNotice(connectedAt + 1);
    assert.equal((await moved.closed()).code, CloseCode.replaced);
    assert.equal(second.coordinator.gateway.holds(worker.nodeId), false);
  });

  it("drops the commands left for a replica that died, once it has been silent past its deadline", async (t) => {
    const { first } = await replicaPair(t);
    const db = first.coordinator.store.db;
    const now = Date.now();
    const command = (createdAt: number) => ({
      replica_id: "rep_gone",
      node_id: "node_gone",
      message: JSON.stringify({ type: "job-stop", clusterId: "clu_gone", rank: 0, attempt: 0 }),
      created_at: createdAt,
    });
    await db
      .insertInto("replica_commands")
      .values([command(now - 60_000), command(now + 60_000)])
      .execute();
    const left = () =>
      db
        .selectFrom("replica_commands")
        .select("created_at")
        .where("replica_id", "=", "rep_gone")
        .execute();
    const kept = await eventually(async () => {
      const rows = await left();
      return rows.length === 1 ? rows : undefined;
    }, "the leader to drop the old command of a dead replica");
    assert.equal(Number(kept[0]!.created_at), now + 60_000, "a recent command is kept for now");
  });

  it("starts a rank held by one replica against a head held by another, also after it reconnects", async (t) => {
    const { first, second, supplier, consumer } = await twoReplicas(t);
    const workers = [
      await availableWorker(first, supplier.apiKey, "eu-west-a"),
      await availableWorker(second, supplier.apiKey, "eu-west-b"),
    ];
    for (const w of workers) t.after(() => w.socket.terminate());
    const client = first.client(consumer.apiKey);
    await eventually(async () => {
      const { offers } = await client.search({ nodes: 2, gpuModel: "cpu" });
      return offers.length === 2 ? true : undefined;
    }, "both nodes available to the first replica");
    const cluster = await client.deployCluster({
      kind: "torch",
      nodes: 2,
      hours: 1,
      gpuModel: "cpu",
      command: ["true"],
    });
    const rankOf = (rank: number) => {
      const nodeId = cluster.nodes.find((n) => n.rank === rank)!.nodeId;
      return workers.find((w) => w.nodeId === nodeId)!;
    };
    const [head, other] = [rankOf(0), rankOf(1)];
    const headStart = await head.next();
    assert.ok(headStart.type === "job-start" && headStart.rank === 0);
    head.send({ type: "job-accepted", clusterId: cluster.id, rank: 0, attempt: 0, port: 29_500 });
    const start = await other.next();
    assert.ok(start.type === "job-start", `expected a job-start, got ${start.type}`);
    assert.deepEqual([start.rank, start.head?.port], [1, 29_500]);

    // Its worker reconnects to its replica, which did not hear the head: the start comes again.
    const again = await other.reconnect(other === workers[0] ? first.url : second.url);
    t.after(() => again.socket.terminate());
    const resent = await again.next();
    assert.ok(resent.type === "job-start", `expected a job-start, got ${resent.type}`);
    assert.deepEqual([resent.rank, resent.head], [1, start.head]);
  });

  it("watches the workers of a replica that left until they reconnect somewhere", async (t) => {
    const first = await startTestCoordinator({
      database: "postgres",
      pgUrl,
      config: { ...FAST_REPLICAS, heartbeatIntervalMs: 60_000 },
    });
    t.after(() => first.close());
    const supplier = await first.signUp(["supplier"]);
    const worker = await availableWorker(first, supplier.apiKey, "eu-west-a");
    t.after(() => worker.socket.terminate());
    const second = await first.replica();
    t.after(() => second.close());
    // Held by the first replica, alive (the second hears so within a sign of life): not the
    // second's to watch.
    await eventually(
      () =>
        Promise.resolve(
          second.coordinator.gateway.detector.isWatched(worker.nodeId) ? undefined : true,
        ),
      "the second replica to leave the worker to the first",
    );

    await first.close();
    // The second now leads and takes the orphan in its care, as a node unheard since a restart.
    await eventually(
      () =>
        Promise.resolve(
          second.coordinator.gateway.detector.isWatched(worker.nodeId) ? true : undefined,
        ),
      "the second replica to watch the orphaned worker",
    );
    assert.equal(second.coordinator.gateway.awaitingContact(worker.nodeId), true);
    const back = await worker.reconnect(second.url);
    t.after(() => back.socket.terminate());
    assert.equal(second.coordinator.gateway.awaitingContact(worker.nodeId), false);
  });

  /** `tandem coordinator` processes on one fresh database, fast to elect. */
  async function replicaProcesses(t: TestContext) {
    const databaseUrl = await freshPostgresDatabase(pgUrl);
    const flags = [
      ...["--database-url", databaseUrl],
      ...["--leader-poll-ms", String(FAST_ELECTION.leaderPollMs)],
      ...["--leader-lease-ms", String(FAST_ELECTION.leaderLeaseMs)],
    ];
    return async () => {
      const home = await mkdtemp(join(tmpdir(), "tandem-replica-"));
      t.after(() => rm(home, { recursive: true, force: true }));
      const { coordinator, url } = await startCoordinatorProcess(home, flags);
      t.after(() => coordinator.kill("SIGKILL"));
      return { process: coordinator, url, client: new TandemClient({ baseUrl: url }) };
    };
  }

  it("moves a worker given two replicas to the second when the first is killed; its node stays available", async (t) => {
    const start = await replicaProcesses(t);
    const [first, second] = [await start(), await start()];
    const supplier = await first.client.createAccount({ roles: ["supplier"] });
    const home = await mkdtemp(join(tmpdir(), "tandem-replica-worker-"));
    t.after(() => rm(home, { recursive: true, force: true }));
    const enrollment = await enrollmentEnv(first.url, supplier.apiKey);
    const worker = spawnTandem(
      ["worker", "start", "--region", "eu-west", "--zone", "eu-west-a", "--home", home],
      { ...enrollment, TANDEM_URL: `${first.url},${second.url}` },
    );
    t.after(() => worker.kill("SIGTERM"));
    const nodeId = await eventually(
      async () => {
        const { items } = await second.client.listNodes({});
        return items.find((n) => n.status === "available")?.id;
      },
      "the worker's node to be available",
      120_000,
    );
    assert.equal((await first.client.health()).connectedWorkers, 1);

    await first.process.kill("SIGKILL");
    await eventually(async () => {
      const { connectedWorkers } = await second.client.health();
      return connectedWorkers === 1 ? true : undefined;
    }, "the worker to connect to the second replica");
    // It reconnected before anyone could judge it: never offline, no history of it.
    assert.equal((await second.client.getNode(nodeId)).status, "available");
    const history = await second.client.nodeHistory(nodeId);
    assert.ok(
      !history.items.some((h) => h.action === "status" && h.to === "offline"),
      JSON.stringify(history.items.map((h) => [h.action, h.to])),
    );
  });

  it("hands the lead on when the leader process is SIGKILLed, and when it is SIGSTOPped", async (t) => {
    const start = await replicaProcesses(t);
    type Replica = Awaited<ReturnType<typeof start>>;
    const replicas: Replica[] = [await start(), await start(), await start()];
    const leaderAmong = (candidates: readonly Replica[]) =>
      eventually(async () => {
        const leaders: Array<{ replica: Replica; term: number }> = [];
        for (const replica of candidates) {
          const { leader, term } = (await replica.client.health()).replica;
          if (leader && term !== null) leaders.push({ replica, term });
        }
        return leaders.length === 1 ? leaders[0] : undefined;
      }, "exactly one leader");

    const first = await leaderAmong(replicas);
    await first.replica.process.kill("SIGKILL");
    const rest = replicas.filter((r) => r !== first.replica);
    const second = await leaderAmong(rest);
    assert.equal(second.term, first.term + 1);

    const stopped: TandemProcess = second.replica.process;
    stopped.child.kill("SIGSTOP");
    const [survivor] = rest.filter((r) => r !== second.replica);
    assert.ok(survivor !== undefined);
    const third = await leaderAmong([survivor]);
    assert.equal(third.term, second.term + 1);
    stopped.child.kill("SIGCONT");
    // Resumed, the former leader finds its session gone and follows.
    const resumed = await eventually(async () => {
      const { leader } = (await second.replica.client.health()).replica;
      return leader ? undefined : true;
    }, "the resumed replica to follow");
    assert.equal(resumed, true);
    assert.equal((await leaderAmong(rest)).term, third.term);
  });
});
