import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from "prom-client";
import { NODE_STATUSES, NodeStatus } from "../core/node-status.ts";
import { statsFromBuckets, type CountBucket } from "./registry/network-counts.ts";
import type { UsageFigures } from "./registry/network-usage.ts";

/** The coordinator's Prometheus metrics, on a registry of its own (no process-global state). */
export interface Metrics {
  readonly registry: Registry;
  readonly httpRequests: Counter<"method" | "route" | "status">;
  readonly httpDuration: Histogram<"method" | "route">;
  readonly connectedWorkers: Gauge;
  readonly heartbeats: Counter;
  readonly authFailures: Counter;
}

/** Where a scrape reads the network's supply and use (absent: those metrics are not exported). */
export interface MetricsSources {
  /** The network counts per (status, model, flagged), kept in memory: no query. */
  supply: () => Promise<readonly CountBucket[]>;
  /** Figures that need a query, cached by the source; undefined while none could be read. */
  usage: () => Promise<UsageFigures | undefined>;
}

/**
 * The coordinator's metrics. With `sources`, a scrape also reports the network's supply and use:
 * `tandem_nodes` and `tandem_gpus` by `state` (total, connected, verified, leased),
 * `tandem_gpus_by_model` by `model` and `state`, `tandem_nodes_by_status` and
 * `tandem_gpus_by_status` by `status`, `tandem_gpu_utilization_ratio` (leased ÷ verified GPUs),
 * `tandem_gpu_hours_served` and `tandem_nodes_seen_30d`. Only verified GPUs are supply.
 */
export function createMetrics(sources?: MetricsSources): Metrics {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry, prefix: "tandem_" });
  if (sources !== undefined) {
    supplyGauges(registry, sources.supply);
    usageGauges(registry, sources.usage);
  }
  return {
    registry,
    connectedWorkers: new Gauge({
      name: "tandem_connected_workers",
      help: "Workers with an authenticated WebSocket to this coordinator",
      registers: [registry],
    }),
    httpRequests: new Counter({
      name: "tandem_http_requests_total",
      help: "HTTP requests answered",
      labelNames: ["method", "route", "status"],
      registers: [registry],
    }),
    httpDuration: new Histogram({
      name: "tandem_http_request_duration_seconds",
      help: "HTTP request duration",
      labelNames: ["method", "route"],
      buckets: [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1],
      registers: [registry],
    }),
    heartbeats: new Counter({
      name: "tandem_heartbeats_total",
      help: "Worker heartbeats received",
      registers: [registry],
    }),
    authFailures: new Counter({
      name: "tandem_worker_auth_failures_total",
      help: "Worker connections refused for a bad or unknown device signature",
      registers: [registry],
    }),
  };
}

type Counts = { total: number; online: number; verified: number };

function states(c: Counts) {
  return [
    ["total", c.total],
    ["connected", c.online],
    ["verified", c.verified],
  ] as const;
}

/** Nodes and GPUs in a lease; a flagged node is never verified supply, so it is not counted. */
function leasedOf(buckets: readonly CountBucket[]): { nodes: number; gpus: number } {
  const leased = { nodes: 0, gpus: 0 };
  for (const b of buckets)
    if (b.status === NodeStatus.leased && !b.flagged) {
      leased.nodes += b.nodes;
      leased.gpus += b.gpus;
    }
  return leased;
}

/** Gauges set at each scrape from the in-memory counts (no query). */
function supplyGauges(registry: Registry, supply: () => Promise<readonly CountBucket[]>): void {
  new Gauge({
    name: "tandem_nodes",
    help: "Registered nodes by state: total, connected (online), verified (online, proven, not flagged), leased (verified, in a lease)",
    labelNames: ["state"],
    registers: [registry],
    async collect() {
      const buckets = await supply();
      const { nodes } = statsFromBuckets(buckets);
      for (const [state, value] of [...states(nodes), ["leased", leasedOf(buckets).nodes] as const])
        this.set({ state }, value);
    },
  });
  new Gauge({
    name: "tandem_gpus",
    help: "GPUs by state: total, connected (online), verified (only verified GPUs are supply), leased (verified, in a lease)",
    labelNames: ["state"],
    registers: [registry],
    async collect() {
      const buckets = await supply();
      const { gpus } = statsFromBuckets(buckets);
      for (const [state, value] of [...states(gpus), ["leased", leasedOf(buckets).gpus] as const])
        this.set({ state }, value);
    },
  });
  new Gauge({
    name: "tandem_gpus_by_model",
    help: "GPUs by reported model and state: total, connected, verified",
    labelNames: ["model", "state"],
    registers: [registry],
    async collect() {
      const { byModel } = statsFromBuckets(await supply()).gpus;
      this.reset();
      for (const m of byModel)
        for (const [state, value] of states(m)) this.set({ model: m.model, state }, value);
    },
  });
  for (const unit of ["nodes", "gpus"] as const)
    new Gauge({
      name: `tandem_${unit}_by_status`,
      help: `Registered ${unit === "nodes" ? "nodes" : "nodes' GPUs"} by node status (every status listed)`,
      labelNames: ["status"],
      registers: [registry],
      async collect() {
        const byStatus = new Map(NODE_STATUSES.map((status) => [status as string, 0]));
        for (const b of await supply())
          byStatus.set(b.status, (byStatus.get(b.status) ?? 0) + b[unit]);
        for (const [status, value] of byStatus) this.set({ status }, value);
      },
    });
  new Gauge({
    name: "tandem_gpu_utilization_ratio",
    help: "Leased GPUs ÷ verified GPUs, 0..1 (0 without verified GPUs)",
    registers: [registry],
    async collect() {
      const buckets = await supply();
      const verified = statsFromBuckets(buckets).gpus.verified;
      this.set(verified === 0 ? 0 : leasedOf(buckets).gpus / verified);
    },
  });
}

/** Gauges of use that need a query (cached by the source); NaN while none could be read. */
function usageGauges(registry: Registry, usage: () => Promise<UsageFigures | undefined>): void {
  new Gauge({
    name: "tandem_gpu_hours_served",
    help: "GPU-hours served by every lease so far: its whole minutes served × its node's GPUs, a running lease to now (at most a minute old)",
    registers: [registry],
    async collect() {
      this.set((await usage())?.gpuHoursServed ?? NaN);
    },
  });
  new Gauge({
    name: "tandem_nodes_seen_30d",
    help: "Nodes connected at some time in the last 30 days (at most a minute old)",
    registers: [registry],
    async collect() {
      this.set((await usage())?.nodesSeen30d ?? NaN);
    },
  });
}
