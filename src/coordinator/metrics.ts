import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from "prom-client";

/** The coordinator's Prometheus metrics, on a registry of its own (no process-global state). */
export interface Metrics {
  readonly registry: Registry;
  readonly httpRequests: Counter<"method" | "route" | "status">;
  readonly httpDuration: Histogram<"method" | "route">;
  readonly connectedWorkers: Gauge;
  readonly heartbeats: Counter;
  readonly authFailures: Counter;
}

export function createMetrics(): Metrics {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry, prefix: "tandem_" });
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
