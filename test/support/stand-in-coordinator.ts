/**
 * A stand-in coordinator for the worker's own tests: `POST /v1/devices` and the worker channel at
 * `/v1/workers/connect`, speaking the protocol (challenge, signed auth, welcome) over a real HTTP
 * server and real WebSockets. It exists so the worker side of self-fencing and drain can be tested
 * while the coordinator's gateway is changing: end-to-end tests against the real coordinator belong
 * beside it. The test decides what it does: whether pings are answered, whether `drain` is.
 */
import { createServer, type IncomingMessage, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { randomBytes } from "node:crypto";
import { WebSocketServer, type WebSocket } from "ws";
import { connectPayload, verifyPayload } from "../../src/protocol/device-signing.ts";
import { IdPrefix, newId } from "../../src/protocol/ids.ts";
import {
  CloseCode,
  PROTOCOL_VERSION,
  WorkerMessage,
  type CoordinatorMessage,
} from "../../src/protocol/worker-messages.ts";

/** An enrollment token of the right shape: the stand-in registers any device without checking. */
export const STANDIN_ENROLLMENT_TOKEN = `tdme_${"s".repeat(43)}`;

export interface StandInOptions {
  heartbeatIntervalMs: number;
  fenceAfterMs: number;
  /** Answer `drain` with `drained` at once (default true). */
  answerDrain?: boolean;
}

export interface StandInCoordinator {
  readonly url: string;
  /** Every message the workers sent, in order of arrival. */
  readonly received: WorkerMessage[];
  /** Pings received from workers so far (answered or not). */
  readonly pings: number;
  /** `performance.now()` when the last answered ping arrived: the coordinator's last sight. */
  readonly lastPongAtMs: number | undefined;
  /** Whether pings get their pong (default true); false stands for a coordinator gone silent. */
  answerPings: boolean;
  answerDrain: boolean;
  /** Whether worker connections are accepted (default true); false stands for one unreachable. */
  acceptConnections: boolean;
  /** Resolves with the first message matching `match`, past or future. */
  next<T extends WorkerMessage["type"]>(
    type: T,
    match?: (message: Extract<WorkerMessage, { type: T }>) => boolean,
  ): Promise<Extract<WorkerMessage, { type: T }>>;
  /** Resolves once `count` pings in all have arrived. */
  pingsReach(count: number): Promise<void>;
  /** Sends to every authenticated worker. */
  broadcast(message: CoordinatorMessage): void;
  /** Starts `command` as rank 0 of a new one-node batch cluster on every worker; its id. */
  startJob(command: string[], attempt?: number): string;
  /** Closes every worker connection (1001), as a coordinator restart would. */
  dropConnections(): void;
  /** Stops (false) or resumes reading every worker connection, as a stalled coordinator would. */
  setReading(reading: boolean): void;
  close(): Promise<void>;
}

export async function startStandInCoordinator(
  options: StandInOptions,
): Promise<StandInCoordinator> {
  const deviceId = newId(IdPrefix.device);
  const nodeId = newId(IdPrefix.node);
  const received: WorkerMessage[] = [];
  const waiters: Array<{ ready: () => boolean; resolve: () => void }> = [];
  const sockets = new Set<WebSocket>();
  const publicKeys = new Map<string, string>();
  let pings = 0;
  let lastPongAtMs: number | undefined;

  const notify = () => {
    for (const waiter of waiters.filter((w) => w.ready())) {
      waiters.splice(waiters.indexOf(waiter), 1);
      waiter.resolve();
    }
  };

  const http: Server = createServer((request, response) => {
    void register(request).then(
      (body) => {
        response.writeHead(201, { "content-type": "application/json" });
        response.end(JSON.stringify(body));
      },
      (error: unknown) => {
        response.writeHead(400, { "content-type": "application/json" });
        response.end(JSON.stringify({ error: { code: "BAD_REQUEST", message: String(error) } }));
      },
    );
  });
  async function register(request: IncomingMessage) {
    if (request.method !== "POST" || request.url !== "/v1/devices")
      throw new Error(`${request.method} ${request.url} is not served here`);
    let text = "";
    for await (const chunk of request) text += String(chunk);
    const body = JSON.parse(text) as { publicKey: string };
    publicKeys.set(deviceId, body.publicKey);
    return { deviceId, nodeId, created: true };
  }

  await new Promise<void>((resolve) => http.listen(0, "127.0.0.1", resolve));
  const { port } = http.address() as AddressInfo;
  // Pongs are answered by hand below, so that a test can stop them.
  const wss = new WebSocketServer({ noServer: true, autoPong: false });
  http.on("upgrade", (request, socket, head) => {
    if (request.url !== "/v1/workers/connect" || !self.acceptConnections) {
      socket.destroy();
      return;
    }
    wss.handleUpgrade(request, socket, head, (ws) => serve(ws));
  });

  const self: StandInCoordinator = {
    url: `http://127.0.0.1:${port}`,
    received,
    get pings() {
      return pings;
    },
    get lastPongAtMs() {
      return lastPongAtMs;
    },
    answerPings: true,
    answerDrain: options.answerDrain ?? true,
    acceptConnections: true,
    next(type, match) {
      type M = Extract<WorkerMessage, { type: typeof type }>;
      const test = (m: WorkerMessage): m is M => m.type === type && (match?.(m as M) ?? true);
      const seen = received.find(test);
      if (seen !== undefined) return Promise.resolve(seen);
      return new Promise((resolve) =>
        waiters.push({
          ready: () => received.some(test),
          resolve: () => resolve(received.find(test)!),
        }),
      );
    },
    pingsReach(count) {
      if (pings >= count) return Promise.resolve();
      return new Promise((resolve) => waiters.push({ ready: () => pings >= count, resolve }));
    },
    broadcast(message) {
      for (const ws of sockets) ws.send(JSON.stringify(message));
    },
    startJob(command, attempt = 0) {
      const clusterId = newId(IdPrefix.cluster);
      this.broadcast({
        type: "job-start",
        clusterId,
        rank: 0,
        attempt,
        worldSize: 1,
        kind: "batch",
        command,
        env: {},
        image: null,
        head: null,
      });
      return clusterId;
    },
    dropConnections() {
      for (const ws of sockets) ws.close(CloseCode.shuttingDown, "stand-in restart");
    },
    setReading(reading) {
      for (const ws of sockets)
        if (reading) ws.resume();
        else ws.pause();
    },
    async close() {
      for (const ws of wss.clients) ws.terminate();
      await new Promise<void>((resolve) => wss.close(() => resolve()));
      await new Promise<void>((resolve) => http.close(() => resolve()));
    },
  };

  function serve(ws: WebSocket): void {
    const nonce = randomBytes(32).toString("base64url");
    ws.on("ping", (data) => {
      pings++;
      if (self.answerPings) {
        lastPongAtMs = performance.now();
        ws.pong(data);
      }
      notify();
    });
    ws.on("close", () => sockets.delete(ws));
    ws.on("message", (data) => {
      const text = Array.isArray(data) ? Buffer.concat(data) : Buffer.from(data as ArrayBuffer);
      const message = WorkerMessage.parse(JSON.parse(text.toString("utf8")));
      received.push(message);
      notify();
      const send = (reply: CoordinatorMessage) => ws.send(JSON.stringify(reply));
      switch (message.type) {
        case "auth": {
          const key = publicKeys.get(message.deviceId);
          if (
            key === undefined ||
            !verifyPayload(key, connectPayload(message.deviceId, nonce), message.signature)
          ) {
            ws.close(CloseCode.authFailed, "bad device signature");
            return;
          }
          sockets.add(ws);
          send({
            type: "welcome",
            nodeId,
            heartbeatIntervalMs: options.heartbeatIntervalMs,
            fenceAfterMs: options.fenceAfterMs,
          });
          return;
        }
        case "drain":
          if (self.answerDrain) send({ type: "drained" });
          return;
        case "bye":
          ws.close(1000, "bye");
          return;
        case "heartbeat":
        case "job-rendezvous":
        case "job-accepted":
        case "job-log":
        case "job-exit":
        case "prove-commit":
        case "prove-reveal":
        case "secrets-resealed":
        case "job-network":
          return;
        default:
          message satisfies never;
      }
    });
    ws.send(JSON.stringify({ type: "challenge", nonce, protocolVersion: PROTOCOL_VERSION }));
  }

  return self;
}
