// bench/leader-handover: coordinator replicas on one PostgreSQL, the leader SIGKILLed again and
// again (issue 19: failure detection and settlement resume within ≤ 3 s p50, ≤ 5 s p99). Three
// replicas, each a process of its own with the default election settings (a follower polls every
// 500 ms); each round finds the leader through `GET /v1/health`, kills it, and times until another
// replica says it leads (polled every 20 ms). Settlement then runs at that leader's next tick
// (`schedulerTickMs`, 1 s): `resumedWithinMs` adds it, the bound on when served time is paid
// again. A killed replica is replaced by a fresh one before the next round.
//
//   node --import tsx bench/leader-handover/run.ts [--kills 20]
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { TandemClient } from "../../src/client/client.ts";
import { createDatabase, startPostgres } from "../../test/support/postgres.ts";
import {
  startCoordinatorProcess,
  type CoordinatorProcess,
} from "../support/coordinator-process.ts";
import { machine, progress, summarize } from "../support/stats.ts";

const { values } = parseArgs({ options: { kills: { type: "string", default: "20" } } });
const KILLS = Number(values.kills);
const POLL_MS = 20;
const TICK_MS = 1000;

const server = await startPostgres();
const databaseUrl = await createDatabase(server.url, "tandem_bench_handover");
const home = await mkdtemp(join(tmpdir(), "tandem-bench-handover-"));
const started = machine();
let serial = 0;

interface Replica {
  process: CoordinatorProcess;
  client: TandemClient;
}

async function startReplica(): Promise<Replica> {
  const process = await startCoordinatorProcess({
    home: join(home, `r${serial++}`),
    port: 0,
    logLevel: "warn",
    databaseUrl,
    schedulerTickMs: TICK_MS,
  });
  return { process, client: new TandemClient({ baseUrl: process.url }) };
}

/** The replica that says it leads, polling until exactly one does. */
async function leaderOf(replicas: readonly Replica[]): Promise<Replica> {
  for (;;) {
    const leading = [];
    for (const replica of replicas)
      if ((await replica.client.health()).replica.leader) leading.push(replica);
    if (leading.length === 1) return leading[0]!;
    await new Promise((resolve) => setTimeout(resolve, POLL_MS));
  }
}

const replicas = [await startReplica(), await startReplica(), await startReplica()];
const handoverMs: number[] = [];
try {
  for (let kill = 1; kill <= KILLS; kill++) {
    const leader = await leaderOf(replicas);
    const rest = replicas.filter((r) => r !== leader);
    const killedAt = performance.now();
    await leader.process.kill();
    await leaderOf(rest);
    handoverMs.push(performance.now() - killedAt);
    progress(`kill ${kill}/${KILLS}: a new leader after ${Math.round(handoverMs.at(-1)!)} ms`);
    replicas.splice(replicas.indexOf(leader), 1, await startReplica());
  }
} finally {
  await Promise.all(replicas.map((r) => r.process.stop()));
  await server.stop();
  await rm(home, { recursive: true, force: true });
}

const handover = summarize(handoverMs);
const resumedWithin = summarize(handoverMs.map((ms) => ms + TICK_MS));
process.stdout.write(
  JSON.stringify(
    {
      bench: "leader-handover",
      replicas: 3,
      kills: KILLS,
      leaderPollMs: 500,
      schedulerTickMs: TICK_MS,
      handoverMs: handover,
      resumedWithinMs: resumedWithin,
      machine: { ...started, loadAvg1mEnd: machine().loadAvg1m },
    },
    null,
    2,
  ) + "\n",
);
