/**
 * One coordinator replica for bench/heartbeats/replicas.ts, in a process of its own so each
 * replica's event loop is measured alone. argv: <home> <database url> <hz>. IPC: posts
 * `{ type: "ready", url }` once listening; "window-start" begins a measuring window, "window-end"
 * answers `{ type: "window", … }` with what it measured; "stop" closes the coordinator and exits.
 */
import { monitorEventLoopDelay, performance } from "node:perf_hooks";
import { startCoordinator } from "../../src/coordinator/main.ts";
import { round2 } from "../support/stats.ts";

const DELAY_RESOLUTION_MS = 10;
const [home = "", databaseUrl = "", hzArg = "2"] = process.argv.slice(2);
const hz = Number(hzArg);

const coordinator = await startCoordinator({
  home,
  port: 0,
  databaseUrl,
  logLevel: "warn",
  rateLimitPerMinute: 1_000_000_000,
  // As bench/heartbeats/run.ts: the interval the workers are asked for, a 6 s deadline.
  heartbeatIntervalMs: Math.round(1000 / hz),
  missedHeartbeats: Math.round(6 * hz),
  // Every simulated worker connects from 127.0.0.1; real ones come from their own addresses.
  maxUnauthenticatedPerAddress: 1024,
});

const heartbeatsTotal = async (): Promise<number> => {
  const response = await coordinator.app.inject({ method: "GET", url: "/metrics" });
  const match = /^tandem_heartbeats_total (\d+)/m.exec(response.body);
  if (match === null) throw new Error("no tandem_heartbeats_total in /metrics");
  return Number(match[1]);
};
/** The histogram records whole gaps between its timer's ticks: the delay is the excess. */
const delayMs = (nanoseconds: number) =>
  round2(Math.max(0, nanoseconds / 1e6 - DELAY_RESOLUTION_MS));

let window:
  | {
      delay: ReturnType<typeof monitorEventLoopDelay>;
      heartbeats: number;
      cpu: NodeJS.CpuUsage;
      startMs: number;
      rssMaxBytes: number;
      sampler: NodeJS.Timeout;
    }
  | undefined;

process.on("message", (message: string) => {
  void (async () => {
    if (message === "window-start") {
      const delay = monitorEventLoopDelay({ resolution: DELAY_RESOLUTION_MS });
      const w = {
        delay,
        heartbeats: await heartbeatsTotal(),
        cpu: process.cpuUsage(),
        startMs: performance.now(),
        rssMaxBytes: 0,
        sampler: setInterval(() => {
          w.rssMaxBytes = Math.max(w.rssMaxBytes, process.memoryUsage.rss());
        }, 250),
      };
      window = w;
      delay.enable();
    } else if (message === "window-end" && window !== undefined) {
      const w = window;
      w.delay.disable();
      clearInterval(w.sampler);
      const wallS = (performance.now() - w.startMs) / 1000;
      const cpu = process.cpuUsage(w.cpu);
      process.send?.({
        type: "window",
        heartbeatsPerS: Math.round(((await heartbeatsTotal()) - w.heartbeats) / wallS),
        eventLoopDelayMs: {
          p50: delayMs(w.delay.percentile(50)),
          p99: delayMs(w.delay.percentile(99)),
          max: delayMs(w.delay.max),
        },
        cores: round2((cpu.user + cpu.system) / 1e6 / wallS),
        rssMaxMiB: Math.round(w.rssMaxBytes / 1_048_576),
        connected: coordinator.gateway.connectedWorkers,
        leader: coordinator.leadership.leading,
      });
    } else if (message === "stop") {
      await coordinator.close();
      process.exit(0);
    }
  })();
});
process.send?.({ type: "ready", url: coordinator.url });
