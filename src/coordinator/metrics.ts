import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from "prom-client";
import type { NetworkStats } from "../protocol/nodes.ts";

/** The coordinator's Prometheus metrics, on a registry of its own (no process-global state). */
export interface Metrics {
  readonly registry: Registry;
  readonly httpRequests: Counter<"method" | "route" | "status">;
  readonly httpDuration: Histogram<"method" | "route">;
  readonly connectedWorkers: Gauge;
  readonly heartbeats: Counter;
  readonly authFailures: Counter;
}

/**
 * The coordinator's metrics. With `networkStats`, a scrape also reports the network's supply
 * (`tandem_nodes` and `tandem_gpus` by `state`: total, connected, verified; `tandem_gpus_by_model`
 * by `model` and `state`), read from the in-memory network counts: only verified GPUs are supply.
 */
export function createMetrics(networkStats?: () => Promise<NetworkStats>): Metrics {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry, prefix: "tandem_" });
  if (networkStats !== undefined) supplyGauges(registry, networkStats);
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

/** Gauges set at each scrape (each reads the in-memory counts: no query). */
function supplyGauges(registry: Registry, networkStats: () => Promise<NetworkStats>): void {
  new Gauge({
    name: "tandem_nodes",
    help: "Registered nodes by state: total, connected (online), verified (online, proven, not flagged)",
    labelNames: ["state"],
    registers: [registry],
    async collect() {
      for (const [state, value] of states((await networkStats()).nodes)) this.set({ state }, value);
    },
  });
  new Gauge({
    name: "tandem_gpus",
    help: "GPUs by state: total, connected (online), verified (only verified GPUs are supply)",
    labelNames: ["state"],
    registers: [registry],
    async collect() {
      for (const [state, value] of states((await networkStats()).gpus)) this.set({ state }, value);
    },
  });
  new Gauge({
    name: "tandem_gpus_by_model",
    help: "GPUs by reported model and state: total, connected, verified",
    labelNames: ["model", "state"],
    registers: [registry],
    async collect() {
      const { byModel } = (await networkStats()).gpus;
      this.reset();
      for (const m of byModel)
        for (const [state, value] of states(m)) this.set({ model: m.model, state }, value);
    },
  });
}
