// Notices between replicas (DESIGN.md §7) go out batched: those published in one turn of the event
// loop share one NOTIFY (a JSON array, split before PostgreSQL's 8,000-byte payload limit), and
// every replica receives them all, in the order they were published. A burst of worker connects
// costs one round trip, not one per worker (issue 19: connecting was the replicas' bottleneck).
import assert from "node:assert/strict";
import { after, describe, it } from "node:test";
import pino from "pino";
import { ReplicaBus, type ReplicaNotice } from "../src/coordinator/replicas/replica-bus.ts";
import { openTestStore } from "./support/coordinator.ts";
import { eventually } from "./support/processes.ts";
import { postgresForTests } from "./support/postgres.ts";

const server = await postgresForTests();

describe("the replica bus", { skip: server.skip ? server.reason : false }, () => {
  after(() => (server.skip ? undefined : server.stop()));

  it("sends a burst of notices as few NOTIFYs, each under the limit, received whole and in order", async (t) => {
    const store = await openTestStore("postgres", server.skip ? "" : server.url);
    t.after(() => store.dispose());
    const received: ReplicaNotice[] = [];
    const bus = new ReplicaBus(
      { db: store.db, newSession: store.newSession!, logger: pino({ level: "silent" }) },
      { notice: (notice) => received.push(notice), resync: () => {} },
    );
    await bus.start();
    t.after(() => bus.close());
    // What goes over the wire, as another listener sees it.
    const wire: string[] = [];
    const listener = store.newSession!();
    await listener.connect();
    t.after(() => listener.end());
    listener.on("notification", ({ payload }) => wire.push(payload ?? ""));
    await listener.query("listen tandem_replicas");

    const burst: ReplicaNotice[] = Array.from({ length: 300 }, (_, i) => ({
      type: "node",
      replicaId: "rep_a",
      nodeId: `node_${String(i).padStart(26, "0")}`,
    }));
    await Promise.all(burst.map((notice) => bus.publish(notice)));
    const later: ReplicaNotice = { type: "commands", replicaId: "rep_b" };
    await bus.publish(later);

    await eventually(
      () => Promise.resolve(received.length === 301 ? true : undefined),
      "every notice received",
      10_000,
    );
    assert.deepEqual(received, [...burst, later], "all of them, in the order published");
    // 300 notices of ~75 bytes: three NOTIFYs for the burst, one for the later notice.
    assert.ok(wire.length <= 5, `${wire.length} NOTIFYs for 301 notices`);
    for (const payload of wire) assert.ok(Buffer.byteLength(payload) < 8000);
  });
});
