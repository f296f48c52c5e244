// A coordinator on a manual clock with simulated workers over real WebSockets, for scheduler
// scenarios (failover, autoscaling): each worker does only what the test tells it to.
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  ManualClock,
  httpRequest,
  openTestStore,
  startTestCoordinator,
  type forEachDatabase,
} from "./coordinator.ts";
import { spawnTandem } from "./processes.ts";
import { heartbeat } from "./devices.ts";
import type { ClusterView } from "../../src/protocol/clusters.ts";
import type { NetworkCapability } from "../../src/protocol/cluster-network.ts";
import type { Engine, RankLimits } from "../../src/protocol/hardware.ts";
import type { CoordinatorMessage } from "../../src/protocol/worker-messages.ts";
import { availableWorker, fund } from "./workers.ts";

export const MINUTE = 60_000;
const HEARTBEAT_MS = 2000;

export type Worker = Awaited<ReturnType<typeof availableWorker>>;
export type JobStart = Extract<CoordinatorMessage, { type: "job-start" }>;

export async function simulatedNetwork(
  db: Parameters<Parameters<typeof forEachDatabase>[1]>[0],
  t: { after(fn: () => unknown): void },
  workers: number,
  config: Record<string, number | string> = {},
  /** Each worker's per-rank offer, by its index in the pool (absent: none reported). */
  offers: ReadonlyArray<RankLimits | undefined> = [],
  /** Each worker's job-network capability, by its index in the pool (absent: none reported). */
  networks: ReadonlyArray<NetworkCapability | undefined> = [],
  /** The address each worker says in its `auth`, by index (absent: none; see availableWorker). */
  localAddresses: ReadonlyArray<string | undefined> = [],
  /** The engines each worker reports, by index (absent: none reported, as a worker before them). */
  engines: ReadonlyArray<Engine[] | undefined> = [],
) {
  const clock = new ManualClock();
  const net = await db.startCoordinator({
    clock,
    config: {
      livenessSweepMs: 0,
      schedulerTickMs: 86_400_000,
      reservationTtlMs: 10_000,
      heartbeatIntervalMs: HEARTBEAT_MS,
      missedHeartbeats: 3,
      ...config,
    },
  });
  t.after(() => net.close());
  const supplier = await net.signUp(["supplier"]);
  const consumer = await net.signUp(["consumer"]);
  await fund(net, consumer.accountId, "10");
  const pool: Worker[] = [];
  for (let i = 0; i < workers; i++) {
    const worker = await availableWorker(
      net,
      supplier.apiKey,
      `eu-west-${"abc"[i % 3]}`,
      offers[i],
      networks[i],
      localAddresses[i],
      engines[i],
    );
    t.after(() => worker.socket.terminate());
    pool.push(worker);
  }
  for (let i = 0; i < 500; i++) {
    if ((await net.client().networkStats()).nodes.byStatus.available === workers) break;
    await new Promise((r) => setTimeout(r, 20));
  }
  const client = consumer.client;
  const byNode = (nodeId: string) => pool.find((w) => w.nodeId === nodeId)!;
  const roleOf = (view: ClusterView, rank: number | null) =>
    byNode(view.nodes.find((n) => n.active && n.rank === rank)!.nodeId);
  const until = async (id: string, test: (view: ClusterView) => boolean, what: string) => {
    // Generous: a loaded CI machine is slow, and a missing event still fails the test.
    for (const deadline = Date.now() + 30_000; Date.now() < deadline;) {
      const view = await client.getCluster(id);
      if (test(view)) return view;
      await new Promise((r) => setTimeout(r, 10));
    }
    throw new Error(`cluster ${id} never ${what}`);
  };
  /** The cluster once a moved rank runs again: its `takeover` event, and every rank running. */
  const tookOver = (id: string) =>
    until(
      id,
      // The view reads leases and events in two statements: wait until both show the takeover.
      (v) =>
        v.events.some((e) => e.type === "takeover") &&
        v.nodes.every((n) => !n.active || n.status === "running" || n.role === "standby"),
      "took over",
    );
  const nextStart = async (worker: Pick<Worker, "next">): Promise<JobStart> => {
    for (;;) {
      const message = await worker.next();
      if (message.type === "job-start") return message;
    }
  };
  /** Heartbeats from `alive`, each taken in before this returns. */
  const beat = async (alive: ReadonlyArray<Pick<Worker, "nodeId" | "send">>) => {
    const { detector } = net.coordinator.gateway;
    for (const worker of alive) {
      const before = detector.lastPayload(worker.nodeId);
      worker.send(heartbeat(clock.now()));
      for (let i = 0; i < 500 && detector.lastPayload(worker.nodeId) === before; i++)
        await new Promise((r) => setTimeout(r, 5));
    }
  };
  /** Everyone but `victim` beats; then time passes until only the victim is past its deadline. */
  const silence = async (victim: Worker) => {
    await beat(pool);
    clock.advance(HEARTBEAT_MS * 3 + 1000);
    await beat(pool.filter((w) => w !== victim));
    await net.coordinator.gateway.sweep();
  };
  const costs = async (id: string) => {
    const response = await httpRequest(net.url, "GET", `/v1/clusters/${id}/costs`, {
      apiKey: consumer.apiKey,
    });
    return response.json as Record<string, string>;
  };
  return {
    clock,
    net,
    client,
    consumer,
    supplier,
    pool,
    byNode,
    roleOf,
    until,
    tookOver,
    nextStart,
    beat,
    silence,
    costs,
  };
}

export type SimulatedNetwork = Awaited<ReturnType<typeof simulatedNetwork>>;

/** SQLite alone, for tests of the CLI: it only reads the API, so one database is enough for it. */
export const SQLITE_ONLY = {
  kind: "sqlite" as const,
  startCoordinator: (opts = {}) => startTestCoordinator({ ...opts, database: "sqlite" }),
  openStore: () => openTestStore("sqlite"),
};

/** The real `tandem` CLI as `s`'s consumer, in a home of its own: exit status and all output. */
export async function consumerCli(s: SimulatedNetwork, t: { after(fn: () => unknown): void }) {
  const home = await mkdtemp(join(tmpdir(), "tandem-cli-"));
  t.after(() => rm(home, { recursive: true, force: true }));
  return async (args: string[]) => {
    const cli = spawnTandem(args, {
      TANDEM_URL: s.net.url,
      TANDEM_API_KEY: s.consumer.apiKey,
      TANDEM_HOME: home,
    });
    const code = await cli.exited;
    return { code, out: [...cli.stdout, ...cli.stderr].join("\n") };
  };
}
