import { randomBytes } from "node:crypto";
import type { FastifyBaseLogger } from "fastify";
import type { WebSocket } from "ws";
import type { Clock } from "../../core/clock.ts";
import type { ProofPolicy } from "../../core/hardware-proof.ts";
import { FailureDetector } from "../../core/failure-detector.ts";
import { connectPayload, verifyPayload } from "../../protocol/device-signing.ts";
import {
  CloseCode,
  PROTOCOL_VERSION,
  WorkerMessage,
  type AuthMessage,
  type CoordinatorMessage,
  type Utilization,
  type WorkerJobMessage,
} from "../../protocol/worker-messages.ts";
import type { CoordinatorEvents } from "../events.ts";
import type { Metrics } from "../metrics.ts";
import type { DeviceRegistry } from "../registry/devices.ts";
import type { NodeLifecycle } from "../registry/node-lifecycle.ts";
import { behindNat } from "../scheduler/cluster-network.ts";
import { NodeProofs, type ProofChannel } from "../verification/node-proofs.ts";
import type { ProofStarter } from "../verification/spot-checks.ts";

export interface WorkerGatewayOptions {
  heartbeatIntervalMs: number;
  missedHeartbeats: number;
  /** A connection that has not proven its key by then is closed, ms. */
  authTimeoutMs: number;
  /**
   * Connections waiting to authenticate, at most, per remote address and in all (default 32 and
   * 1024); one more is closed at once with `tryAgainLater` (1013), so unauthenticated sockets
   * held open cannot pile up.
   */
  maxUnauthenticatedPerAddress?: number | undefined;
  maxUnauthenticated?: number | undefined;
  /** How proofs of hardware are sized and judged (an unverified node is proven when it connects). */
  proofPolicy: ProofPolicy;
  /** How often silent nodes are looked for, ms (default a quarter heartbeat); 0: only when `sweep()` is called. */
  sweepIntervalMs?: number | undefined;
  /**
   * How often the nodes heard from are written to the store as last seen, ms (default 5
   * heartbeats); 0: only when `flushLastSeen()` is called. After a coordinator restart, a node
   * that never comes back is paid no further than this coarse copy.
   */
  lastSeenFlushMs?: number | undefined;
  /**
   * Extra time, ms, that a node still online in the store when the coordinator starts gets to
   * reconnect before it is judged (default 0); see CoordinatorConfig.restartGraceMs.
   */
  restartGraceMs?: number | undefined;
  /**
   * How long a node whose connection closed without a goodbye gets to connect again, at least,
   * ms (default one heartbeat interval); see core/failure-detector.ts for why it is never
   * declared before its own fencing has stopped its jobs either.
   */
  reconnectGraceMs?: number | undefined;
}

export type JobMessageHandler = (nodeId: string, message: WorkerJobMessage) => Promise<void>;

interface Session {
  socket: WebSocket;
  deviceId: string;
  nodeId: string;
  /** Where the worker connected from: its cluster peers reach it there. */
  address: string;
  /** The address it says it has differs from `address` (scheduler/cluster-network.ts). */
  behindNat: boolean;
  /** What its proof of hardware sends and closes through. */
  proofChannel: ProofChannel;
  /** Its stored hardware report (JSON), what its proofs prove. */
  hardware: string;
  /** When this connection was accepted, ms: a newer one elsewhere replaces it, an older one not. */
  connectedAtMs: number;
}

/**
 * The worker channel. Each connection proves its device key by signing a fresh nonce, then sends
 * heartbeats that only touch the failure detector's memory. Status changes (online, offline,
 * revoked) go through the node lifecycle, so every one of them lands in the node's history.
 */
export class WorkerGateway implements ProofStarter {
  readonly detector: FailureDetector<Utilization>;
  private readonly sessions = new Map<string, Session>();
  /** Connections not yet authenticated, per remote address. */
  private readonly unauthenticated = new Map<string, number>();
  private unauthenticatedTotal = 0;
  private readonly byNode = new Map<string, Session>();
  readonly proofs: NodeProofs;
  private jobHandler: JobMessageHandler | undefined;
  private connectHandler: ((nodeId: string) => Promise<void>) | undefined;
  private sweepTimer: NodeJS.Timeout | undefined;
  private flushTimer: NodeJS.Timeout | undefined;
  /** Sweeps set for closed nodes' due times (`sweepWhenDue`). */
  private readonly dueTimers = new Set<NodeJS.Timeout>();
  /** Nodes that beat since the last flush, and when that flush began (a lower bound for them). */
  private heardSinceFlush = new Set<string>();
  private lastFlushMs: number;

  constructor(
    private readonly deps: {
      clock: Clock;
      devices: DeviceRegistry;
      lifecycle: NodeLifecycle;
      events: CoordinatorEvents;
      metrics: Metrics;
      logger: FastifyBaseLogger;
    },
    private readonly options: WorkerGatewayOptions,
  ) {
    this.lastFlushMs = deps.clock.now();
    this.proofs = new NodeProofs(deps, options.proofPolicy);
    this.detector = new FailureDetector({
      clock: deps.clock,
      heartbeatIntervalMs: options.heartbeatIntervalMs,
      missedHeartbeats: options.missedHeartbeats,
      restartGraceMs: options.restartGraceMs ?? 0,
      ...(options.reconnectGraceMs === undefined
        ? {}
        : { reconnectGraceMs: options.reconnectGraceMs }),
    });
    // Proofs run only while a node is idle: a spot check under way when the node is placed is
    // dropped unrecorded (its late answer is ignored); the node is checked once idle again.
    deps.events.on("node:status", ({ nodeId, to }) => {
      if (to === "leased" || to === "standby") this.proofs.drop(nodeId);
    });
    deps.events.on("device:revoked", ({ deviceId, nodeId }) => this.closeRevoked(deviceId, nodeId));
  }

  /**
   * Starts a spot check of a connected node's hardware (spot-checks.ts); false when its worker is
   * not connected here or a proof of it is under way.
   */
  startProof(nodeId: string): boolean {
    const session = this.byNode.get(nodeId);
    if (session === undefined || this.proofs.inFlightFor(nodeId)) return false;
    void this.proofs
      .start(session.proofChannel, session.hardware)
      .catch((error: unknown) =>
        this.deps.logger.error({ err: error, nodeId }, "proof of hardware failed"),
      );
    return true;
  }

  get connectedWorkers(): number {
    return this.sessions.size;
  }

  /**
   * Starts the failure detector. `alreadyOnline` are the nodes the store still shows online (a
   * restart), each with when it was last seen before: they get a full deadline to reconnect, but
   * one that never does is counted gone since then.
   */
  start(alreadyOnline: ReadonlyArray<{ nodeId: string; lastSeenMs: number | null }>): void {
    for (const { nodeId, lastSeenMs } of alreadyOnline)
      this.detector.watch(nodeId, lastSeenMs ?? undefined);
    const flushMs = this.options.lastSeenFlushMs ?? this.options.heartbeatIntervalMs * 5;
    if (flushMs > 0) {
      this.flushTimer = setInterval(
        () =>
          void this.flushLastSeen().catch((error: unknown) =>
            this.deps.logger.error({ err: error }, "last-seen flush failed"),
          ),
        flushMs,
      );
      this.flushTimer.unref();
    }
    if (this.options.sweepIntervalMs === 0) return;
    const periodMs =
      this.options.sweepIntervalMs ??
      Math.max(50, Math.floor(this.options.heartbeatIntervalMs / 4));
    this.sweepTimer = setInterval(() => void this.sweep(), periodMs);
    this.sweepTimer.unref();
  }

  /** Writes the nodes heard from since the last flush as last seen at that flush's start. */
  async flushLastSeen(): Promise<void> {
    const heard = [...this.heardSinceFlush];
    const since = this.lastFlushMs;
    this.heardSinceFlush = new Set();
    this.lastFlushMs = this.deps.clock.now();
    if (heard.length > 0) await this.deps.lifecycle.recordLastSeen(heard, since);
  }

  servedUntilMs(nodeId: string): number | undefined {
    return this.detector.servedUntilMs(nodeId);
  }

  awaitingContact(nodeId: string): boolean {
    return this.detector.awaitingContact(nodeId);
  }

  stop(): void {
    clearInterval(this.sweepTimer);
    clearInterval(this.flushTimer);
    for (const timer of this.dueTimers) clearTimeout(timer);
    this.dueTimers.clear();
    this.proofs.stop();
    for (const { socket } of this.sessions.values())
      socket.close(CloseCode.shuttingDown, "coordinator shutting down");
    this.sessions.clear();
    this.deps.metrics.connectedWorkers.set(0);
  }

  /** Where job messages from workers go (the scheduler). */
  onJobMessage(handler: JobMessageHandler): void {
    this.jobHandler = handler;
  }

  /** Called after each welcome (the scheduler resends what the worker may have missed). */
  onWorkerConnected(handler: (nodeId: string) => Promise<void>): void {
    this.connectHandler = handler;
  }

  send(nodeId: string, message: CoordinatorMessage): boolean {
    const session = this.byNode.get(nodeId);
    if (session === undefined || session.socket.readyState !== session.socket.OPEN) return false;
    send(session.socket, message);
    return true;
  }

  addressOf(nodeId: string): string | undefined {
    return this.byNode.get(nodeId)?.address;
  }

  behindNat(nodeId: string): boolean {
    return this.byNode.get(nodeId)?.behindNat ?? false;
  }

  /** When the worker's connection here was accepted, ms; undefined when it is not held here. */
  connectedAtMs(nodeId: string): number | undefined {
    return this.byNode.get(nodeId)?.connectedAtMs;
  }

  /** A revoked device's connection ends here, and its node is no longer watched. */
  closeRevoked(deviceId: string, nodeId: string): void {
    this.detector.forget(nodeId);
    this.sessions.get(deviceId)?.socket.close(CloseCode.revoked, "device revoked");
    this.dropSession(deviceId);
  }

  /** Whether this coordinator holds the worker's WebSocket. */
  holds(nodeId: string): boolean {
    return this.byNode.has(nodeId);
  }

  /**
   * The worker of `nodeId` connected to another replica at `connectedAtMs` (replicas/replicas.ts):
   * its silence here is no failure, and an older connection of it here is closed. A connection
   * here accepted after that one is the worker's latest and stays: the word came late.
   */
  release(nodeId: string, connectedAtMs: number): void {
    const session = this.byNode.get(nodeId);
    if (session !== undefined && session.connectedAtMs > connectedAtMs) return;
    this.detector.forget(nodeId);
    if (session === undefined) return;
    this.deps.logger.info({ nodeId }, "worker connected to another replica: released here");
    session.socket.close(CloseCode.replaced, "connected to another coordinator");
    this.dropSession(session.deviceId);
  }

  /**
   * Watches a node whose replica died, as one restored at a restart: it has the restart grace to
   * connect to a replica, and counts as last seen at `lastSeenMs` until it does.
   */
  adopt(nodeId: string, lastSeenMs: number): void {
    if (!this.byNode.has(nodeId) && !this.detector.isWatched(nodeId))
      this.detector.watch(nodeId, lastSeenMs);
  }

  private keepSession(session: Session): void {
    this.sessions.set(session.deviceId, session);
    this.byNode.set(session.nodeId, session);
    this.deps.metrics.connectedWorkers.set(this.sessions.size);
  }

  private dropSession(deviceId: string): void {
    const session = this.sessions.get(deviceId);
    if (session !== undefined && this.byNode.get(session.nodeId) === session)
      this.byNode.delete(session.nodeId);
    this.sessions.delete(deviceId);
    this.deps.metrics.connectedWorkers.set(this.sessions.size);
  }

  /** Declares every silent node offline. Exposed so tests with a manual clock can drive it. */
  async sweep(): Promise<void> {
    for (const dead of this.detector.sweep()) {
      const { nodeId, lastBeatMs, unheardSinceRestart, closedAtMs } = dead;
      const reason = unheardSinceRestart
        ? "not heard from since the coordinator restarted"
        : closedAtMs === undefined
          ? `missed ${this.options.missedHeartbeats} heartbeats`
          : "connection closed and not reopened";
      if (!(await this.markOffline(nodeId, reason, lastBeatMs, unheardSinceRestart))) {
        // Not recorded (the database is locked or gone): judged again at a later sweep.
        this.detector.judgeAgain(dead);
        continue;
      }
      for (const [deviceId, session] of this.sessions) {
        if (session.nodeId !== nodeId) continue;
        session.socket.terminate();
        this.dropSession(deviceId);
      }
    }
  }

  /**
   * Sweeps once a closed node is due, not up to a sweep period later (unless sweeps are left to
   * the caller: tests with a manual clock).
   */
  private sweepWhenDue(nodeId: string): void {
    const dueInMs = this.detector.closedDueInMs(nodeId);
    if (dueInMs === undefined || this.sweepTimer === undefined) return;
    const timer = setTimeout(() => {
      this.dueTimers.delete(timer);
      void this.sweep();
    }, dueInMs + 1);
    timer.unref();
    this.dueTimers.add(timer);
  }

  /** Holds a place for a connection waiting to authenticate; answers its release, or undefined when full. */
  private admitUnauthenticated(address: string): (() => void) | undefined {
    const fromAddress = this.unauthenticated.get(address) ?? 0;
    if (
      fromAddress >= (this.options.maxUnauthenticatedPerAddress ?? 32) ||
      this.unauthenticatedTotal >= (this.options.maxUnauthenticated ?? 1024)
    )
      return undefined;
    this.unauthenticated.set(address, fromAddress + 1);
    this.unauthenticatedTotal++;
    let released = false;
    return () => {
      if (released) return;
      released = true;
      this.unauthenticatedTotal--;
      const left = (this.unauthenticated.get(address) ?? 1) - 1;
      if (left > 0) this.unauthenticated.set(address, left);
      else this.unauthenticated.delete(address);
    };
  }

  accept(socket: WebSocket, remoteAddress: string): void {
    const release = this.admitUnauthenticated(remoteAddress);
    if (release === undefined) {
      this.deps.metrics.authFailures.inc();
      socket.close(CloseCode.tryAgainLater, "too many connections waiting to authenticate");
      return;
    }
    const nonce = randomBytes(32).toString("base64url");
    let session: Session | undefined;
    const authTimer = setTimeout(
      () => socket.close(CloseCode.authFailed, "authentication timed out"),
      this.options.authTimeoutMs,
    );
    socket.on("close", () => {
      release();
      clearTimeout(authTimer);
      if (session === undefined) return;
      this.proofs.drop(session.nodeId, session.proofChannel);
      if (this.sessions.get(session.deviceId) !== session) return;
      this.dropSession(session.deviceId);
      // Still its node's live connection (not replaced, not ended by a goodbye or a verdict):
      // the worker died or its link was cut. A no-op for a node the detector no longer watches.
      this.detector.disconnected(session.nodeId);
      this.sweepWhenDue(session.nodeId);
    });
    socket.on("message", (data, isBinary) => {
      const message = parseMessage(data, isBinary);
      if (message === undefined) {
        socket.close(CloseCode.badMessage, "malformed message");
        return;
      }
      if (session === undefined) {
        if (message.type !== "auth") {
          socket.close(CloseCode.authFailed, "authenticate first");
          return;
        }
        void this.authenticate(socket, remoteAddress, nonce, message).then(
          (s) => {
            clearTimeout(authTimer);
            if (s !== undefined) release();
            session = s;
          },
          (error: unknown) => {
            this.deps.logger.error({ err: error }, "worker authentication failed");
            socket.close(CloseCode.authFailed, "authentication failed");
          },
        );
        return;
      }
      switch (message.type) {
        case "heartbeat":
          this.deps.metrics.heartbeats.inc();
          if (message.utilization.gpuFault !== undefined) {
            // A failed GPU health check is a node failure: offline (its ranks move), then closed.
            const fault = message.utilization.gpuFault;
            this.detector.forget(session.nodeId);
            void this.markOffline(session.nodeId, `GPU health check failed: ${fault}`).finally(() =>
              socket.close(CloseCode.unhealthy, "GPU health check failed"),
            );
            return;
          }
          this.detector.beat(session.nodeId, message.utilization);
          this.heardSinceFlush.add(session.nodeId);
          return;
        case "bye":
          this.detector.forget(session.nodeId);
          void this.markOffline(session.nodeId, `worker stopped: ${message.reason}`).finally(() =>
            socket.close(1000, "bye"),
          );
          return;
        case "auth":
          socket.close(CloseCode.badMessage, "already authenticated");
          return;
        case "prove-commit":
          void this.proofs.onCommit(session.proofChannel, message);
          return;
        case "prove-reveal":
          void this.proofs.onReveal(session.proofChannel, message);
          return;
        case "job-rendezvous":
        case "job-accepted":
        case "job-log":
        case "job-exit":
        case "drain":
        case "secrets-resealed":
        case "job-network": {
          const nodeId = session.nodeId;
          void this.jobHandler?.(nodeId, message).then(
            () => {
              // Recorded (or known stale): the worker may forget it. Not acked on failure, so
              // the worker sends it again after its next welcome.
              if (message.type === "job-exit")
                this.send(nodeId, {
                  type: "job-exit-ack",
                  clusterId: message.clusterId,
                  rank: message.rank,
                  attempt: message.attempt,
                });
            },
            (error: unknown) => {
              this.deps.logger.error(
                { err: error, nodeId, type: message.type },
                "job message failed",
              );
            },
          );
          return;
        }
        default:
          message satisfies never;
      }
    });
    send(socket, { type: "challenge", nonce, protocolVersion: PROTOCOL_VERSION });
  }

  private async authenticate(
    socket: WebSocket,
    remoteAddress: string,
    nonce: string,
    { deviceId, signature, localAddress }: AuthMessage,
  ): Promise<Session | undefined> {
    const device = await this.deps.devices.findForConnect(deviceId);
    if (
      device === undefined ||
      !verifyPayload(device.publicKey, connectPayload(deviceId, nonce), signature)
    ) {
      this.deps.metrics.authFailures.inc();
      socket.close(CloseCode.authFailed, "bad device signature");
      return undefined;
    }
    if (device.status === "revoked") {
      socket.close(CloseCode.revoked, "device revoked");
      return undefined;
    }
    if (socket.readyState !== socket.OPEN) return undefined;
    const previous = this.sessions.get(deviceId);
    previous?.socket.close(CloseCode.replaced, "replaced by a newer connection");
    const verified = device.verifiedAt !== null;
    const address = remoteAddress.replace(/^::ffff:/, "");
    const session: Session = {
      socket,
      deviceId,
      nodeId: device.nodeId,
      address,
      behindNat: behindNat(address, localAddress),
      proofChannel: {
        nodeId: device.nodeId,
        send: (message) => {
          if (socket.readyState === socket.OPEN) send(socket, message);
        },
        close: (reason) => socket.close(CloseCode.shuttingDown, reason),
      },
      hardware: device.hardware,
      connectedAtMs: this.deps.clock.now(),
    };
    this.keepSession(session);
    await this.deps.lifecycle.apply(
      device.nodeId,
      { type: "connect", verified },
      { actor: `device:${deviceId}`, reason: "worker connected", nowMs: this.deps.clock.now() },
    );
    this.detector.watch(device.nodeId);
    send(socket, {
      type: "welcome",
      nodeId: device.nodeId,
      heartbeatIntervalMs: this.options.heartbeatIntervalMs,
      // One interval short of the detector's deadline: the worker fences before it is declared dead.
      fenceAfterMs: this.detector.fenceAfterMs,
    });
    if (!verified)
      void this.proofs
        .start(session.proofChannel, device.hardware)
        .catch((error: unknown) =>
          this.deps.logger.error({ err: error, nodeId: device.nodeId }, "proof of hardware failed"),
        );
    void this.connectHandler?.(device.nodeId).catch((error: unknown) =>
      this.deps.logger.error({ err: error, nodeId: device.nodeId }, "worker reconnect failed"),
    );
    return session;
  }

  /** Records the node offline; false (logged) when the store could not be written. */
  private async markOffline(
    nodeId: string,
    reason: string,
    lastSeenMs?: number,
    unheardSinceRestart = false,
  ): Promise<boolean> {
    const result = await this.deps.lifecycle
      .apply(
        nodeId,
        { type: "disconnect" },
        {
          actor: "coordinator",
          reason,
          nowMs: this.deps.clock.now(),
          ...(lastSeenMs === undefined ? {} : { lastSeenMs }),
          ...(unheardSinceRestart ? { unheardSinceRestart } : {}),
        },
      )
      .catch((error: unknown) => {
        this.deps.logger.error({ err: error, nodeId, reason }, "node offline not recorded");
        return undefined;
      });
    if (result?.ok === true) this.deps.logger.info({ nodeId, reason }, "node offline");
    return result !== undefined;
  }
}

function parseMessage(data: unknown, isBinary: boolean): WorkerMessage | undefined {
  if (isBinary || !(data instanceof Buffer)) return undefined;
  try {
    const parsed = WorkerMessage.safeParse(JSON.parse(data.toString("utf8")));
    return parsed.success ? parsed.data : undefined;
  } catch {
    return undefined;
  }
}

function send(socket: WebSocket, message: CoordinatorMessage): void {
  socket.send(JSON.stringify(message));
}
