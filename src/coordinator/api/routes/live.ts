import type { ServerResponse } from "node:http";
import type { FastifyBaseLogger } from "fastify";
import { ErrorCode, TandemError } from "../../../core/errors.ts";
import {
  LiveEventName,
  type LiveHello,
  type LiveNodeStatus,
  type StatsSample,
} from "../../../protocol/live.ts";
import { LIVE_CLUSTER_EVENT } from "../../../protocol/network.ts";
import { ClusterFeed } from "../../explorer/cluster-feed.ts";
import type { ApiDeps, ZodApp } from "../server.ts";

/** Tuning of the live stream; every field has a default (see {@link DEFAULT_LIVE_OPTIONS}). */
export interface LiveOptions {
  /** Interval between network samples, ms (default 5000). */
  sampleIntervalMs: number;
  /** Samples kept in the ring buffer (default 720: one hour at the default interval). */
  samplesKept: number;
  /** Least time between two samples, ms, however many status changes arrive (default 1000). */
  minSampleGapMs: number;
  /** Interval of the keep-alive comment that stops proxies from closing idle streams, ms (default 15000). */
  keepAliveMs: number;
  /** Reconnection delay the browser is told to use, ms (default 1000). */
  retryMs: number;
  /** Concurrent streams at most; one more is refused with RATE_LIMITED (default 1000). */
  maxClients: number;
  /** A client whose unsent output exceeds this is dropped (it reconnects and refetches), bytes (default 1 MiB). */
  maxBufferedBytes: number;
  /** Interval between reads of new cluster events while anyone listens, ms (default 500). */
  clusterPollMs: number;
}

export const DEFAULT_LIVE_OPTIONS: LiveOptions = {
  sampleIntervalMs: 5000,
  samplesKept: 720,
  minSampleGapMs: 1000,
  keepAliveMs: 15_000,
  retryMs: 1000,
  maxClients: 1000,
  maxBufferedBytes: 1024 * 1024,
  clusterPollMs: 500,
};

/**
 * The public live stream, `GET /v1/events`, as Server-Sent Events (schemas in protocol/live.ts).
 *
 * SSE rather than a WebSocket: updates flow one way, it is plain HTTP through any proxy, and every
 * browser's EventSource reconnects by itself. Status changes go out as they are committed. Network
 * totals are sampled into a ring buffer (one hour at 5 s by default) that each new client gets in
 * its `hello`, so the explorer's history charts are filled on first load rather than only from
 * the moment the page opened. A status change also triggers a sample, at most one per
 * `minSampleGapMs`: a burst of 10,000 changes costs one stats query, not 10,000. Samples are
 * memory only; a restarted coordinator starts its history afresh.
 */
export function liveRoutes(
  app: ZodApp,
  { events, nodes, clock, db }: Pick<ApiDeps, "events" | "nodes" | "clock" | "db">,
  overrides: Partial<LiveOptions> = {},
): void {
  const options = { ...DEFAULT_LIVE_OPTIONS, ...overrides };
  const hub = new LiveHub(options, () => nodes.stats(), clock.now.bind(clock), app.log);
  const clusters = new ClusterFeed(
    db,
    (event) => hub.broadcast(LIVE_CLUSTER_EVENT, event),
    () => hub.clientCount > 0,
    (error) => app.log.warn({ err: error }, "live: cluster events read failed"),
    { pollMs: options.clusterPollMs },
  );
  let unsubscribe: (() => void) | undefined;

  app.addHook("onReady", async () => {
    unsubscribe = events.on("node:status", (change) => {
      const message: LiveNodeStatus = {
        nodeId: change.nodeId,
        from: change.from,
        to: change.to,
        at: new Date(change.atMs).toISOString(),
        reason: change.reason,
      };
      hub.broadcast(LiveEventName.nodeStatus, message);
      hub.requestSample();
    });
    hub.start();
    await clusters.start();
    await hub.sample();
  });
  app.addHook("preClose", async () => {
    unsubscribe?.();
    hub.stop();
    await clusters.stop();
  });

  app.get(
    "/v1/events",
    {
      schema: {
        tags: ["live"],
        summary: "Live public events (Server-Sent Events)",
        description:
          "text/event-stream. Events: `hello` (recent network samples), `node.status` (a node's " +
          "status changed), `stats.sample` (network totals), `cluster.event` (a public cluster " +
          "event, anonymized). Schemas: src/protocol/live.ts, src/protocol/network.ts.",
      },
    },
    (request, reply) => {
      if (hub.clientCount >= options.maxClients) {
        throw new TandemError(ErrorCode.RATE_LIMITED, "too many live connections; retry later", {
          details: { retryAfterMs: options.retryMs * 10 },
        });
      }
      reply.hijack();
      const response = reply.raw;
      response.writeHead(200, {
        "content-type": "text/event-stream; charset=utf-8",
        "cache-control": "no-cache, no-transform",
        connection: "keep-alive",
        "x-accel-buffering": "no",
      });
      request.raw.socket.setNoDelay(true);
      response.write(`retry: ${options.retryMs}\n\n`);
      hub.add(response);
      response.on("close", () => hub.remove(response));
    },
  );
}

class LiveHub {
  private readonly clients = new Set<ServerResponse>();
  private readonly samples: StatsSample[] = [];
  private sampleTimer: NodeJS.Timeout | undefined;
  private keepAliveTimer: NodeJS.Timeout | undefined;
  private pendingSample: NodeJS.Timeout | undefined;
  private sampling: Promise<void> | undefined;
  private lastSampleMs = -Infinity;
  private stopped = false;

  constructor(
    private readonly options: LiveOptions,
    private readonly stats: ApiDeps["nodes"]["stats"],
    private readonly now: () => number,
    private readonly log: FastifyBaseLogger,
  ) {}

  get clientCount(): number {
    return this.clients.size;
  }

  start(): void {
    this.sampleTimer = setInterval(() => void this.sample(), this.options.sampleIntervalMs);
    this.keepAliveTimer = setInterval(
      () => this.writeAll(": keep-alive\n\n"),
      this.options.keepAliveMs,
    );
    this.sampleTimer.unref();
    this.keepAliveTimer.unref();
  }

  /** Ends every stream so the server can close; clients see the end and reconnect elsewhere. */
  stop(): void {
    this.stopped = true;
    clearInterval(this.sampleTimer);
    clearInterval(this.keepAliveTimer);
    clearTimeout(this.pendingSample);
    for (const client of this.clients) client.end();
    this.clients.clear();
  }

  add(client: ServerResponse): void {
    if (this.stopped) {
      client.end();
      return;
    }
    this.clients.add(client);
    const hello: LiveHello = {
      sampleIntervalMs: this.options.sampleIntervalMs,
      samples: this.samples,
    };
    this.write(client, frame(LiveEventName.hello, hello));
  }

  remove(client: ServerResponse): void {
    this.clients.delete(client);
  }

  broadcast(event: LiveEventName | typeof LIVE_CLUSTER_EVENT, data: unknown): void {
    this.writeAll(frame(event, data));
  }

  /** A sample soon, but not sooner than `minSampleGapMs` after the last one. */
  requestSample(): void {
    if (this.pendingSample !== undefined || this.stopped) return;
    const waitMs = Math.max(0, this.lastSampleMs + this.options.minSampleGapMs - this.now());
    this.pendingSample = setTimeout(() => {
      this.pendingSample = undefined;
      void this.sample();
    }, waitMs);
    this.pendingSample.unref();
  }

  /** Takes one sample (never two at once), keeps it, and sends it to every client. */
  sample(): Promise<void> {
    this.sampling ??= this.takeSample().finally(() => {
      this.sampling = undefined;
    });
    return this.sampling;
  }

  private async takeSample(): Promise<void> {
    const atMs = this.now();
    this.lastSampleMs = atMs;
    try {
      const stats = await this.stats();
      if (this.stopped) return;
      const sample: StatsSample = {
        at: new Date(atMs).toISOString(),
        nodesTotal: stats.nodes.total,
        nodesOnline: stats.nodes.online,
        gpusTotal: stats.gpus.total,
        gpusOnline: stats.gpus.online,
        nodesVerified: stats.nodes.verified,
        gpusVerified: stats.gpus.verified,
      };
      this.samples.push(sample);
      if (this.samples.length > this.options.samplesKept) this.samples.shift();
      this.broadcast(LiveEventName.statsSample, sample);
    } catch (error) {
      this.log.warn({ err: error }, "live: network sample failed");
    }
  }

  private writeAll(chunk: string): void {
    for (const client of this.clients) this.write(client, chunk);
  }

  private write(client: ServerResponse, chunk: string): void {
    if (client.writableLength > this.options.maxBufferedBytes) {
      this.clients.delete(client);
      client.destroy();
      return;
    }
    client.write(chunk);
  }
}

function frame(event: string, data: unknown): string {
  return `event: ${event}\ndata: ${JSON.stringify(data)}\n\n`;
}
