import { EventEmitter } from "node:events";
import { isIPv4 } from "node:net";
import WebSocket from "ws";
import { backoffDelayMs, type BackoffOptions } from "../core/backoff.ts";
import type { JobPeersMessage } from "../protocol/cluster-network.ts";
import { connectPayload, signPayload } from "../protocol/device-signing.ts";
import type { z } from "zod";
import {
  CloseCode,
  CoordinatorMessage,
  type JobExitAckMessage,
  type JobStartMessage,
  type JobStopMessage,
  type SecretsResealMessage,
  type Utilization,
  type WorkerMessage,
} from "../protocol/worker-messages.ts";
import { ContactClock } from "./contact-clock.ts";
import { explainConnectionError } from "./coordinator-trust.ts";
import { LogQueue } from "./log-queue.ts";
import type { DeviceIdentity } from "./identity.ts";
import type { HardwareProver } from "./proof/hardware-prover.ts";

export interface CoordinatorLinkOptions {
  /**
   * The coordinator's replicas, tried in turn: after a lost link the next one at once, and only
   * after a whole round has failed with backoff (one URL: backoff after each failure).
   */
  coordinatorUrls: readonly [string, ...string[]];
  /** The only CA trusted for a wss coordinator (`--ca-file`); absent, Node's roots. */
  ca?: string | undefined;
  identity: DeviceIdentity & { deviceId: string };
  backoff: BackoffOptions;
  /** Reads the machine's current load for each heartbeat. */
  sampleUtilization: () => Utilization;
  /** Answers the coordinator's proofs of hardware (`prove`, `prove-open`). */
  prover: HardwareProver;
  log: (message: string, fields?: Record<string, unknown>) => void;
  /**
   * Told at every fence check while in contact: the outside fence is this many ms from now
   * (fencing/fence-watchdog.ts). A stopped agent stops telling, and the watchdog ends its jobs.
   */
  renewFence?: (fenceInMs: number) => void;
  /**
   * The address other hosts reach this one at (`--public-address`, a forwarded port range): said
   * in `auth` instead of the link's local address, so the coordinator does not count it behind NAT.
   */
  publicAddress?: string | undefined;
}

/** Why the worker must stop its jobs now: no proof of contact for `silentMs` (≥ `fenceAfterMs`). */
export interface FenceNotice {
  silentMs: number;
  fenceAfterMs: number;
  heartbeatIntervalMs: number;
}

export interface CoordinatorLinkEvents {
  connected: [{ nodeId: string; heartbeatIntervalMs: number; fenceAfterMs: number }];
  disconnected: [{ code: number; reason: string }];
  revoked: [];
  /** A job-start or job-stop for this worker's job supervisor. */
  job: [JobStartMessage | z.infer<typeof JobStopMessage>];
  /** The cluster overlay's peers of a rank this worker runs (src/protocol/cluster-network.ts). */
  peers: [JobPeersMessage];
  /** The coordinator has recorded a `job-exit` (see jobs/job-outbox.ts). */
  "exit-acknowledged": [JobExitAckMessage];
  /**
   * The fencing budget has run out (contact-clock.ts): every job must stop at once. Emitted at
   * every check while it stays out, so a job started meanwhile is stopped too.
   */
  fence: [FenceNotice];
  /** The coordinator has answered a `drain`: this worker may stop now. */
  drained: [];
  /** A fresh node of one of this worker's clusters needs its secrets (jobs/job-secrets.ts). */
  reseal: [SecretsResealMessage];
}

/**
 * The worker's one WebSocket to the coordinator. It answers the challenge with the device key,
 * heartbeats (each with a WebSocket ping) at the interval the coordinator asks for, and reconnects
 * with capped, jittered backoff after any loss — except after revocation, which is final. From the
 * first welcome on it watches the contact clock and emits `fence` once the coordinator may have
 * declared this node dead, connected or not. A drain asked for while the link is down is sent
 * after the next welcome (and again after each one until the coordinator answers `drained`).
 */
export class CoordinatorLink extends EventEmitter<CoordinatorLinkEvents> {
  private socket: WebSocket | undefined;
  private linkLocalAddress: string | undefined;
  private heartbeatTimer: NodeJS.Timeout | undefined;
  private reconnectTimer: NodeJS.Timeout | undefined;
  private fenceTimer: NodeJS.Timeout | undefined;
  private reconnects = 0;
  /** Which of `coordinatorUrls` the next connection goes to, and tries since the last welcome. */
  private urlIndex = 0;
  private triesThisRound = 0;
  private seq = 0;
  private ping = 0;
  private stopped = false;
  private welcomed = false;
  private heartbeatIntervalMs = 0;
  private authSentAtMs: number | undefined;
  private drainReason: string | undefined;
  private drained = false;
  private readonly contact = new ContactClock();
  private readonly logs = new LogQueue(LOG_QUEUE_BYTES);

  constructor(private readonly options: CoordinatorLinkOptions) {
    super();
  }

  /** Monotonic milliseconds: the fencing clock must not jump with the wall clock. */
  private now(): number {
    return performance.now();
  }

  start(): void {
    this.connect();
  }

  /** Says goodbye (the node goes offline at once, not after missed heartbeats) and closes. */
  async stop(reason: string): Promise<void> {
    this.stopped = true;
    clearTimeout(this.reconnectTimer);
    clearInterval(this.heartbeatTimer);
    clearInterval(this.fenceTimer);
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

  /**
   * The address this host has on its link to the coordinator (the socket's local address), once
   * connected: what a NAT would rewrite, so the coordinator can tell (cluster-network.ts).
   */
  get localAddress(): string | undefined {
    return this.linkLocalAddress;
  }

  /**
   * Asks the coordinator to drain this node: now if the link is up, else after the next welcome.
   * `drained` follows once the coordinator has handed over or finished every rank here.
   */
  drain(reason: string): void {
    this.drainReason = reason;
    if (this.welcomed) this.send({ type: "drain", reason });
  }

  private connect(): void {
    const urls = this.options.coordinatorUrls;
    const url = new URL("/v1/workers/connect", urls[this.urlIndex % urls.length]);
    url.protocol = url.protocol === "https:" ? "wss:" : "ws:";
    const socket = new WebSocket(url, {
      maxPayload: 1024 * 1024,
      ...(this.options.ca === undefined ? {} : { ca: this.options.ca }),
    });
    this.socket = socket;
    this.authSentAtMs = undefined;
    socket.on("upgrade", (response) => {
      const address = response.socket.localAddress;
      this.linkLocalAddress = address?.startsWith("::ffff:") ? address.slice(7) : address;
    });
    socket.on("message", (data) => this.onMessage(socket, data));
    socket.on("pong", (data) => this.contact.pongReceived(Number(data.toString("utf8"))));
    socket.on("error", (error) => {
      const explained = explainConnectionError(error, url.href);
      this.options.log("connection error", {
        error: error.message,
        ...(explained === error ? {} : { hint: explained.message }),
      });
    });
    socket.on("close", (code, reasonBuffer) => {
      clearInterval(this.heartbeatTimer);
      // A proof belongs to its connection: the coordinator drops it too.
      this.options.prover.drop();
      this.welcomed = false;
      const reason = reasonBuffer.toString();
      this.emit("disconnected", { code, reason });
      if (code === CloseCode.revoked) {
        this.stopped = true;
        this.emit("revoked");
        return;
      }
      if (this.stopped) return;
      // The next replica at once while a round of them is not over: a lost replica must cost
      // this worker a reconnect well within its fencing budget, not its jobs. An unhealthy node
      // waits the longest backoff: its GPUs will not heal in milliseconds.
      this.urlIndex++;
      const nextInRound = ++this.triesThisRound < urls.length;
      const delayMs =
        code === CloseCode.unhealthy
          ? this.options.backoff.maxMs
          : nextInRound
            ? 0
            : backoffDelayMs(this.reconnects++, this.options.backoff, Math.random);
      if (!nextInRound) this.triesThisRound = 0;
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
        this.authSentAtMs = this.now();
        // What a NAT would rewrite, so the coordinator can tell (an IPv6 link says nothing).
        const localAddress = this.options.publicAddress ?? this.linkLocalAddress;
        this.send({
          type: "auth",
          deviceId: identity.deviceId,
          signature,
          ...(localAddress !== undefined && isIPv4(localAddress) ? { localAddress } : {}),
        });
        return;
      }
      case "welcome":
        this.onWelcome(message.heartbeatIntervalMs, message.fenceAfterMs);
        this.emit("connected", {
          nodeId: message.nodeId,
          heartbeatIntervalMs: message.heartbeatIntervalMs,
          fenceAfterMs: message.fenceAfterMs,
        });
        return;
      case "job-start":
      case "job-stop":
        this.emit("job", message);
        return;
      case "job-peers":
        this.emit("peers", message);
        return;
      case "job-exit-ack":
        this.emit("exit-acknowledged", message);
        return;
      case "secrets-reseal":
        this.emit("reseal", message);
        return;
      case "drained":
        this.drained = true;
        this.emit("drained");
        return;
      case "prove":
        this.answer(socket, this.options.prover.prove(message));
        return;
      case "prove-open":
        this.answer(socket, this.options.prover.open(message));
        return;
      default:
        message satisfies never;
    }
  }

  /** Sends a proof's answer once ready, on the connection that asked for it only. */
  private answer(socket: WebSocket, reply: Promise<WorkerMessage | undefined>): void {
    reply.then(
      (message) => {
        if (message !== undefined && this.socket === socket) this.send(message);
      },
      (error: unknown) => this.options.log("proof failed", { error: String(error) }),
    );
  }

  private onWelcome(heartbeatIntervalMs: number, fenceAfterMs: number): void {
    this.reconnects = 0;
    this.triesThisRound = 0;
    this.welcomed = true;
    this.heartbeatIntervalMs = heartbeatIntervalMs;
    this.contact.welcomed(this.authSentAtMs ?? this.now(), fenceAfterMs);
    clearInterval(this.heartbeatTimer);
    this.heartbeatTimer = setInterval(() => this.heartbeat(), heartbeatIntervalMs);
    this.heartbeat();
    this.sendLogs();
    clearInterval(this.fenceTimer);
    this.fenceTimer = setInterval(
      () => this.checkFence(),
      Math.max(1, Math.floor(heartbeatIntervalMs / 4)),
    );
    this.fenceTimer.unref();
    // At once, not a quarter interval later: a job may start (and an agent freeze) before then,
    // and the watchdog fences nothing it was never given a fence for.
    this.checkFence();
    if (this.drainReason !== undefined && !this.drained)
      this.send({ type: "drain", reason: this.drainReason });
  }

  private checkFence(): void {
    const nowMs = this.now();
    if (!this.contact.overdue(nowMs)) {
      // The watchdog's fence: when this agent's own fence and its grace (see main.ts) are over.
      const silentMs = this.contact.silentMs(nowMs) ?? 0;
      this.options.renewFence?.(
        this.contact.fenceAfterMs - silentMs + Math.floor(this.heartbeatIntervalMs / 2),
      );
      return;
    }
    this.emit("fence", {
      silentMs: Math.round(this.contact.silentMs(nowMs) ?? 0),
      fenceAfterMs: this.contact.fenceAfterMs,
      heartbeatIntervalMs: this.heartbeatIntervalMs,
    });
  }

  private heartbeat(): void {
    this.send({
      type: "heartbeat",
      seq: this.seq++,
      utilization: this.options.sampleUtilization(),
    });
    const socket = this.socket;
    if (socket?.readyState !== WebSocket.OPEN) return;
    const ping = this.ping++;
    this.contact.pingSent(ping, this.now());
    socket.ping(String(ping));
  }

  /**
   * Sends at once, except job output: that waits in the log queue and goes out only while the
   * socket's buffer is under LOG_WATERMARK_BYTES, so control messages overtake it.
   */
  send(message: WorkerMessage): void {
    if (message.type === "job-log") {
      this.logs.push(message);
      this.sendLogs();
      return;
    }
    if (this.socket?.readyState === WebSocket.OPEN) this.socket.send(JSON.stringify(message));
  }

  /** Bytes of job output waiting for the socket. */
  get queuedLogBytes(): number {
    return this.logs.queuedBytes;
  }

  private sendLogs(): void {
    const socket = this.socket;
    if (!this.welcomed || socket?.readyState !== WebSocket.OPEN) return;
    while (socket.bufferedAmount < LOG_WATERMARK_BYTES) {
      const message = this.logs.shift();
      if (message === undefined) return;
      // Written to the kernel: look for room again (ws has no 'drain' event of its own).
      socket.send(JSON.stringify(message), (error) => {
        if (error === undefined || error === null) this.sendLogs();
      });
    }
  }
}

/**
 * Most job output held in the socket's own buffer, bytes: a control message waits behind at most
 * this much (on a 10 Mbit/s uplink, about 50 ms).
 */
const LOG_WATERMARK_BYTES = 64 * 1024;
/** Most job output held while the link is slow or down, bytes (above a rank's 4 MiB burst). */
const LOG_QUEUE_BYTES = 8 * 1024 * 1024;

function rawToString(data: WebSocket.RawData): string {
  if (Array.isArray(data)) return Buffer.concat(data).toString("utf8");
  if (data instanceof ArrayBuffer) return Buffer.from(data).toString("utf8");
  return data.toString("utf8");
}
