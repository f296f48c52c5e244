/**
 * Simulated workers for bench/heartbeats, in a process of their own so they never share the
 * coordinator's event loop. Each does what the real worker's CoordinatorLink does: opens a
 * WebSocket to /v1/workers/connect, answers the challenge with its device key, and from the
 * welcome on beats at the interval the coordinator asks for, with a heartbeat shaped like a real
 * one (one utilization entry per GPU).
 *
 * Beats are paced by one 10 ms ticker against each worker's own schedule (welcome time + k ×
 * interval) rather than 10,000 `setInterval`s, which drift late under load and would offer less
 * than N × hz. A worker more than one interval behind skips ahead instead of bursting.
 *
 * argv: <coordinator url[,url…]> <identities json file> [connections opened at once, default
 * 200] — with several URLs (coordinator
 * replicas), worker i connects to URL i mod n. IPC: posts `{ type: "connected" }` once every
 * worker is in, answers the message "stop" with `{ type: "report" }` and exits.
 */
import { createPrivateKey } from "node:crypto";
import { readFileSync } from "node:fs";
import { performance } from "node:perf_hooks";
import WebSocket from "ws";
import { connectPayload, signPayload } from "../../src/protocol/device-signing.ts";
import { CoordinatorMessage, type WorkerMessage } from "../../src/protocol/worker-messages.ts";

/** One simulated worker's identity, as run.ts writes it. */
export interface WorkerIdentity {
  deviceId: string;
  /** PKCS#8 DER, base64. */
  privateKey: string;
  gpuCount: number;
}

interface SimulatedWorker {
  socket: WebSocket;
  seq: number;
  gpuCount: number;
  open: boolean;
  intervalMs: number;
  nextBeatMs: number;
}

const DEFAULT_CONNECTING_AT_ONCE = 200;
const TICK_MS = 10;

const [coordinatorUrl = "", identitiesFile = "", connectingArg] = process.argv.slice(2);
const connectingAtOnce = Number(connectingArg ?? DEFAULT_CONNECTING_AT_ONCE);
const identities = JSON.parse(readFileSync(identitiesFile, "utf8")) as WorkerIdentity[];
const connectUrls = coordinatorUrl
  .split(",")
  .map((url) => new URL("/v1/workers/connect", url.replace(/^http/, "ws")));
const workers: SimulatedWorker[] = [];
let sent = 0;
let unexpectedCloses = 0;

function connect(identity: WorkerIdentity, connectUrl: URL): Promise<void> {
  const key = createPrivateKey({
    key: Buffer.from(identity.privateKey, "base64"),
    format: "der",
    type: "pkcs8",
  });
  return new Promise((resolve, reject) => {
    const socket = new WebSocket(connectUrl, { handshakeTimeout: 30_000 });
    const worker: SimulatedWorker = {
      socket,
      seq: 0,
      gpuCount: identity.gpuCount,
      open: false,
      intervalMs: 0,
      nextBeatMs: 0,
    };
    socket.on("message", (data) => {
      const message = CoordinatorMessage.parse(JSON.parse((data as Buffer).toString("utf8")));
      if (message.type === "challenge") {
        const payload = connectPayload(identity.deviceId, message.nonce);
        const signature = signPayload(key, payload);
        send(worker, { type: "auth", deviceId: identity.deviceId, signature });
      } else if (message.type === "welcome") {
        worker.open = true;
        worker.intervalMs = message.heartbeatIntervalMs;
        worker.nextBeatMs = performance.now();
        workers.push(worker);
        resolve();
      }
    });
    socket.on("error", reject);
    socket.on("close", (code, reason) => {
      if (worker.open) unexpectedCloses++;
      worker.open = false;
      reject(new Error(`closed before welcome: ${code} ${String(reason)}`));
    });
  });
}

function send(worker: SimulatedWorker, message: WorkerMessage): void {
  worker.socket.send(JSON.stringify(message));
}

function beat(worker: SimulatedWorker): void {
  sent++;
  send(worker, {
    type: "heartbeat",
    seq: worker.seq++,
    utilization: {
      cpuPct: Math.round(Math.random() * 1000) / 10,
      memoryUsedMiB: 12_288,
      gpus: Array.from({ length: worker.gpuCount }, (_, index) => ({
        index,
        utilizationPct: 87,
        temperatureC: 64,
      })),
    },
  });
}

const ticker = setInterval(() => {
  const now = performance.now();
  for (const worker of workers) {
    if (!worker.open || worker.nextBeatMs > now) continue;
    beat(worker);
    worker.nextBeatMs += worker.intervalMs;
    if (worker.nextBeatMs <= now) worker.nextBeatMs = now + worker.intervalMs;
  }
}, TICK_MS);

const startedMs = performance.now();
const failures: string[] = [];
let next = 0;
await Promise.all(
  Array.from({ length: connectingAtOnce }, async () => {
    while (next < identities.length) {
      const index = next++;
      const identity = identities[index]!;
      try {
        await connect(identity, connectUrls[index % connectUrls.length]!);
        if (workers.length % 1000 === 0)
          process.stderr.write(`  ${workers.length} workers connected\n`);
      } catch (error) {
        failures.push(error instanceof Error ? error.message : String(error));
      }
    }
  }),
);
process.send?.({
  type: "connected",
  workers: workers.length,
  failed: failures.length,
  firstFailure: failures[0] ?? null,
  connectS: (performance.now() - startedMs) / 1000,
});

const beatStartMs = performance.now();
const sentAtStart = sent;
const cpuAtStart = process.cpuUsage();

process.on("message", (message) => {
  if (message !== "stop") return;
  clearInterval(ticker);
  const wallS = (performance.now() - beatStartMs) / 1000;
  const cpu = process.cpuUsage(cpuAtStart);
  process.send?.(
    {
      type: "report",
      sentPerS: (sent - sentAtStart) / wallS,
      cores: (cpu.user + cpu.system) / 1e6 / wallS,
      unexpectedCloses,
    },
    () => {
      for (const worker of workers) worker.socket.terminate();
      process.exit(0);
    },
  );
});
