import { EventEmitter } from "node:events";
import WebSocket from "ws";
import { backoffDelayMs, type BackoffOptions } from "../core/backoff.ts";
import { connectPayload, signPayload } from "../protocol/device-signing.ts";
import type { z } from "zod";
import {
  CloseCode,
  CoordinatorMessage,
  type JobStartMessage,
  type JobStopMessage,
  type Utilization,
  type WorkerMessage,
} from "../protocol/worker-messages.ts";
import type { DeviceIdentity } from "./identity.ts";
import { ChallengeSolver } from "./verification.ts";

export interface CoordinatorLinkOptions {
  coordinatorUrl: string;
  identity: DeviceIdentity & { deviceId: string };
  backoff: BackoffOptions;
  /** Reads the machine's current load for each heartbeat. */
  sampleUtilization: () => Utilization;
  log: (message: string, fields?: Record<string, unknown>) => void;
}

export interface CoordinatorLinkEvents {
  connected: [{ nodeId: string; heartbeatIntervalMs: number }];
  disconnected: [{ code: number; reason: string }];
  revoked: [];
  /** A job-start or job-stop for this worker's job supervisor. */
  job: [JobStartMessage | z.infer<typeof JobStopMessage>];
}

/**
 * The worker's one WebSocket to the coordinator. It answers the challenge with the device key,
 * heartbeats at the interval the coordinator asks for, and reconnects with capped, jittered
 * backoff after any loss — except after revocation, which is final.
 */
export class CoordinatorLink extends EventEmitter<CoordinatorLinkEvents> {
  private socket: WebSocket | undefined;
  private heartbeatTimer: NodeJS.Timeout | undefined;
  private reconnectTimer: NodeJS.Timeout | undefined;
  private attempt = 0;
  private seq = 0;
  private stopped = false;
  private readonly solver = new ChallengeSolver();

  constructor(private readonly options: CoordinatorLinkOptions) {
    super();
  }

  start(): void {
    this.connect();
  }

  /** Says goodbye (the node goes offline at once, not after missed heartbeats) and closes. */
  async stop(reason: string): Promise<void> {
    this.stopped = true;
    clearTimeout(this.reconnectTimer);
    clearInterval(this.heartbeatTimer);
    const socket = this.socket;
    if (socket === undefined || socket.readyState === WebSocket.CLOSED) return;
    const closed = new Promise<void>((resolve) => socket.once("close", () => resolve()));
    if (socket.readyState === WebSocket.OPEN) {
      this.send({ type: "bye", reason });
      // The coordinator closes after recording the goodbye; don't wait forever for it.
      setTimeout(() => socket.terminate(), 2000).unref();
    } else {
      socket.terminate();
    }
    await closed;
  }

  private connect(): void {
    const url = new URL("/v1/workers/connect", this.options.coordinatorUrl);
    url.protocol = url.protocol === "https:" ? "wss:" : "ws:";
    const socket = new WebSocket(url, { maxPayload: 1024 * 1024 });
    this.socket = socket;
    socket.on("message", (data) => this.onMessage(socket, data));
    socket.on("error", (error) => this.options.log("connection error", { error: error.message }));
    socket.on("close", (code, reasonBuffer) => {
      clearInterval(this.heartbeatTimer);
      const reason = reasonBuffer.toString();
      this.emit("disconnected", { code, reason });
      if (code === CloseCode.revoked) {
        this.stopped = true;
        this.emit("revoked");
        return;
      }
      if (this.stopped) return;
      const delayMs = backoffDelayMs(this.attempt++, this.options.backoff, Math.random);
      this.options.log("disconnected; reconnecting", { code, reason, delayMs });
      this.reconnectTimer = setTimeout(() => this.connect(), delayMs);
    });
  }

  private onMessage(socket: WebSocket, data: WebSocket.RawData): void {
    let message: CoordinatorMessage;
    try {
      message = CoordinatorMessage.parse(JSON.parse(rawToString(data)));
    } catch (error) {
      this.options.log("malformed message from coordinator", { error: String(error) });
      socket.close(CloseCode.badMessage, "malformed message");
      return;
    }
    switch (message.type) {
      case "challenge": {
        const { identity } = this.options;
        const signature = signPayload(
          identity.privateKey,
          connectPayload(identity.deviceId, message.nonce),
        );
        this.send({ type: "auth", deviceId: identity.deviceId, signature });
        return;
      }
      case "welcome":
        this.attempt = 0;
        clearInterval(this.heartbeatTimer);
        this.heartbeatTimer = setInterval(() => this.heartbeat(), message.heartbeatIntervalMs);
        this.heartbeat();
        this.emit("connected", {
          nodeId: message.nodeId,
          heartbeatIntervalMs: message.heartbeatIntervalMs,
        });
        return;
      case "job-start":
      case "job-stop":
        this.emit("job", message);
        return;
      case "verify":
        void this.solver.solve(message).then((commit) => this.send(commit));
        return;
      case "verify-open":
        this.send(this.solver.reveal(message));
        return;
      default:
        message satisfies never;
    }
  }

  private heartbeat(): void {
    this.send({
      type: "heartbeat",
      seq: this.seq++,
      utilization: this.options.sampleUtilization(),
    });
  }

  send(message: WorkerMessage): void {
    if (this.socket?.readyState === WebSocket.OPEN) this.socket.send(JSON.stringify(message));
  }
}

function rawToString(data: WebSocket.RawData): string {
  if (Array.isArray(data)) return Buffer.concat(data).toString("utf8");
  if (data instanceof ArrayBuffer) return Buffer.from(data).toString("utf8");
  return data.toString("utf8");
}
