// Work on one cluster is ordered across coordinator replicas (issue 19 item 5, DESIGN.md §7): the
// ClusterQueue orders it within a process, and session advisory locks on a PostgreSQL session of
// each replica's own order it between them. Two lock holders here stand for two replicas.
import assert from "node:assert/strict";
import { after, describe, it, type TestContext } from "node:test";
import pg from "pg";
import pino from "pino";
import { TandemError } from "../src/core/errors.ts";
import { PostgresClusterLocks, lockKeyOf } from "../src/coordinator/replicas/cluster-locks.ts";
import { ClusterQueue } from "../src/coordinator/scheduler/cluster-queue.ts";
import { eventually } from "./support/processes.ts";
import { postgresForTests } from "./support/postgres.ts";

const server = await postgresForTests();

describe("cluster locks between replicas", { skip: server.skip ? server.reason : false }, () => {
  after(() => (server.skip ? undefined : server.stop()));

  /** One replica's locks: its own session, a lease of `leaseMs`, waiting at most `waitMs`. */
  function replicaLocks(t: TestContext, waitMs = 10_000, leaseMs = 10_000) {
    const sessions: pg.Client[] = [];
    const url = server.skip ? "" : server.url;
    const locks = new PostgresClusterLocks(
      {
        newSession: () => {
          const session = new pg.Client({ connectionString: url });
          sessions.push(session);
          return session;
        },
        logger: pino({ level: "silent" }),
      },
      { leaseMs, waitMs },
    );
    t.after(() => locks.close());
    return { locks, sessions };
  }

  const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

  it("makes a second replica wait for a cluster the first holds, and only for that one", async (t) => {
    const first = replicaLocks(t).locks;
    const second = replicaLocks(t).locks;

    const letGo = await first.hold(["clu_a"]);
    let secondHolds = false;
    const waiting = second.hold(["clu_a"]).then((release) => {
      secondHolds = true;
      return release;
    });
    (await second.hold(["clu_b"]))(); // another cluster is free meanwhile
    await sleep(100);
    assert.equal(secondHolds, false, "clu_a is still held by the first replica");
    letGo();
    (await waiting)();
    assert.equal(secondHolds, true);
  });

  it("orders two replicas' queues on one cluster: their pieces of work never overlap", async (t) => {
    const queues = [
      new ClusterQueue(replicaLocks(t).locks),
      new ClusterQueue(replicaLocks(t).locks),
    ];
    const trace: string[] = [];
    let inside = 0;
    const piece = (queue: ClusterQueue, name: string) =>
      queue.serial("clu_shared", async () => {
        inside += 1;
        trace.push(`${name} in (${inside})`);
        await sleep(5);
        trace.push(`${name} out`);
        inside -= 1;
      });
    await Promise.all(
      Array.from({ length: 10 }, (_, i) => piece(queues[i % 2]!, `${i % 2 === 0 ? "A" : "B"}${i}`)),
    );
    assert.equal(trace.length, 20);
    assert.deepEqual(
      trace.filter((line) => line.endsWith("in (2)")),
      [],
      `two replicas worked on one cluster at once: ${trace.join(", ")}`,
    );
  });

  it("takes sets of clusters in one order, so replicas asking in opposite orders both finish", async (t) => {
    const first = new ClusterQueue(replicaLocks(t).locks);
    const second = new ClusterQueue(replicaLocks(t).locks);
    const ids = ["clu_x", "clu_y", "clu_z"];
    const runs: Promise<void>[] = [];
    for (let i = 0; i < 20; i++) {
      runs.push(first.serialAll(ids, () => sleep(1)));
      runs.push(second.serialAll([...ids].reverse(), () => sleep(1)));
      runs.push(second.serial(ids[i % 3]!, () => sleep(1)));
    }
    await Promise.all(runs);
  });

  it("gives up after its wait with UNAVAILABLE, holding nothing of the set", async (t) => {
    const first = replicaLocks(t).locks;
    const second = replicaLocks(t, 200).locks;
    const third = replicaLocks(t, 200).locks;
    // The set's later key is held elsewhere; its earlier key, taken meanwhile, must be let go.
    const [low, high] = ["clu_p", "clu_q"].sort((a, b) => lockKeyOf(a) - lockKeyOf(b));
    const letGo = await first.hold([high!]);
    await assert.rejects(second.hold([low!, high!]), (error: unknown) => {
      assert.ok(error instanceof TandemError);
      assert.equal(error.code, "UNAVAILABLE");
      return true;
    });
    (await third.hold([low!]))();
    letGo();
  });

  it("lets a replica's clusters go when its session ends, and opens a new one for the next hold", async (t) => {
    const first = replicaLocks(t);
    const second = replicaLocks(t).locks;
    await first.locks.hold(["clu_dead"]); // never let go: its holder "dies"
    const admin = new pg.Client({ connectionString: server.skip ? "" : server.url });
    await admin.connect();
    t.after(() => admin.end());
    // Ends the session holding the cluster's lock (two-key advisory locks show objsubid 2).
    const ended = await admin.query<{ ended: boolean }>(
      `select pg_terminate_backend(pid) as ended from pg_locks
        where locktype = 'advisory' and objsubid = 2 and objid::bigint = $1 and granted`,
      [lockKeyOf("clu_dead") >>> 0],
    );
    assert.deepEqual(
      ended.rows.map((row) => row.ended),
      [true],
    );

    (await second.hold(["clu_dead"]))();
    const again = await eventually(async () => {
      try {
        return await first.locks.hold(["clu_dead"]);
      } catch {
        return undefined;
      }
    }, "the first replica to hold clusters again");
    again();
    assert.equal(first.sessions.length, 2, "a second session was opened");
  });

  it("lets a silent replica's clusters go after its lease (the server ends the idle session)", async (t) => {
    const frozen = replicaLocks(t, 10_000, 300);
    const second = replicaLocks(t, 5_000).locks;
    await frozen.locks.hold(["clu_frozen"]);
    // A replica paused by SIGSTOP sends nothing: stand in for it by stopping its keep-alive.
    clearInterval(frozen.locks["keepAlive"]);
    const started = Date.now();
    (await second.hold(["clu_frozen"]))();
    const waited = Date.now() - started;
    assert.ok(waited >= 200 && waited < 4_000, `waited ${waited} ms for a 300 ms lease`);
  });
});
