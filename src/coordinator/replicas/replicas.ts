import type { FastifyBaseLogger } from "fastify";
import type { Kysely } from "kysely";
import type pg from "pg";
import type { Clock } from "../../core/clock.ts";
import { NODE_STATUSES, isOnline } from "../../core/node-status.ts";
import type { CoordinatorEvents } from "../events.ts";
import type { Database } from "../store/schema.ts";
import { toNumberOrNull } from "../store/rows.ts";
import type { Leadership } from "./leader-election.ts";
import { ReplicaBus, type ReplicaNotice } from "./replica-bus.ts";
import { ReplicaDirectory, type ReplicaDirectoryOptions } from "./replica-directory.ts";
import { ReplicaWorkerChannel, type LocalWorkers } from "./replica-worker-channel.ts";

/** What the replicas need of this coordinator's worker gateway. */
export interface ReplicaGateway extends LocalWorkers {
  /** A device revoked through another replica: close its connection here. */
  closeRevoked(deviceId: string, nodeId: string): void;
  /** The worker connected to another replica at `connectedAtMs`: stop watching it here. */
  release(nodeId: string, connectedAtMs: number): void;
  /** When the worker's connection here was accepted, ms (undefined: not held here). */
  connectedAtMs(nodeId: string): number | undefined;
  /** Watch a node whose replica died, with the restart grace to reconnect somewhere. */
  adopt(nodeId: string, lastSeenMs: number): void;
}

/**
 * This coordinator as one of many on one PostgreSQL (DESIGN.md §7). It says it is alive every
 * `aliveEveryMs`; records which workers it holds and tells the others (which then stop watching
 * them); delivers the commands other replicas leave for its workers; and, while it leads, watches
 * the workers of replicas that died (`deadAfterMs` without a sign of life) until they reconnect
 * somewhere or are declared offline — as one coordinator does for every node after a restart.
 */
export class Replicas {
  readonly directory: ReplicaDirectory;
  readonly channel: ReplicaWorkerChannel;
  private readonly bus: ReplicaBus;
  private timer: NodeJS.Timeout | undefined;

  constructor(
    readonly replicaId: string,
    private readonly deps: {
      db: Kysely<Database>;
      clock: Clock;
      logger: FastifyBaseLogger;
      newSession: () => pg.Client;
      gateway: ReplicaGateway;
      leadership: Pick<Leadership, "leading">;
      events: CoordinatorEvents;
      /** What this replica keeps of other nodes in memory, reread when another replica changes one. */
      nodeChanged: ReadonlyArray<(nodeId: string) => void>;
    },
    private readonly options: ReplicaDirectoryOptions,
  ) {
    this.bus = new ReplicaBus(deps, {
      notice: (notice) => this.onNotice(notice),
      resync: () => void this.resync(),
    });
    const publish = (notice: ReplicaNotice) => this.bus.publish(notice);
    this.directory = new ReplicaDirectory(replicaId, { ...deps, publish }, options);
    this.channel = new ReplicaWorkerChannel(deps.gateway, this.directory, { ...deps, publish });
    // What changes here, the other replicas hear of (each event comes after its commit).
    const tell = (notice: ReplicaNotice) =>
      void publish(notice).catch((error: unknown) =>
        deps.logger.warn({ err: error, notice }, "replica notice not sent"),
      );
    const node = ({ nodeId }: { nodeId: string }) => tell({ type: "node", replicaId, nodeId });
    deps.events.on("node:status", node);
    deps.events.on("node:metadata", node);
    deps.events.on("node:reputation", node);
    deps.events.on("device:revoked", ({ deviceId, nodeId }) =>
      tell({ type: "revoked", replicaId, deviceId, nodeId }),
    );
  }

  /** Listens, reads who holds which worker, says it is alive, takes the commands waiting for it. */
  async start(): Promise<void> {
    await this.bus.start();
    await this.directory.load();
    await this.directory.beat();
    await this.channel.deliver();
    this.timer = setInterval(
      () =>
        void this.beat().catch((error: unknown) =>
          this.deps.logger.warn({ err: error }, "replica sign of life not given"),
        ),
      this.options.aliveEveryMs,
    );
    this.timer.unref();
  }

  /** The worker of `nodeId` connected here: recorded, and the other replicas told. */
  held(nodeId: string): Promise<void> {
    const { gateway } = this.deps;
    return this.directory.hold(
      nodeId,
      gateway.addressOf(nodeId) ?? null,
      gateway.behindNat(nodeId),
      gateway.connectedAtMs(nodeId) ?? this.deps.clock.now(),
    );
  }

  /** Leaves: the others see this replica gone at once, and its workers reconnect elsewhere. */
  async close(): Promise<void> {
    clearInterval(this.timer);
    await this.channel.flushed();
    await this.directory
      .leave()
      .catch((error: unknown) => this.deps.logger.warn({ err: error }, "replica not signed off"));
    await this.bus.close();
  }

  private onNotice(notice: ReplicaNotice): void {
    const fromOther = notice.replicaId !== this.replicaId;
    // A replica heard from again (started before this one, or resumed from a pause) holds its
    // workers: they are not this one's to watch.
    const back = notice.type === "alive" && fromOther && !this.directory.isAlive(notice.replicaId);
    this.directory.onNotice(notice);
    const { gateway } = this.deps;
    switch (notice.type) {
      case "alive":
        if (back) this.releaseHeldElsewhere(this.directory.heldBy(notice.replicaId));
        return;
      case "connected":
        if (fromOther) gateway.release(notice.nodeId, notice.atMs);
        return;
      case "commands":
        if (!fromOther) void this.channel.deliver();
        return;
      case "node":
        if (fromOther) for (const reread of this.deps.nodeChanged) reread(notice.nodeId);
        return;
      case "revoked":
        if (fromOther) gateway.closeRevoked(notice.deviceId, notice.nodeId);
        return;
      case "left":
        return;
    }
  }

  /** After a gap in notices: read again what they would have said. */
  private async resync(): Promise<void> {
    try {
      await this.directory.load();
      this.releaseHeldElsewhere(this.directory.heldElsewhere());
      await this.channel.deliver();
    } catch (error) {
      this.deps.logger.warn({ err: error }, "replica resync failed");
    }
  }

  /** Stops watching workers another live replica holds, unless connected here since. */
  private releaseHeldElsewhere(nodeIds: readonly string[]): void {
    for (const nodeId of nodeIds) {
      const at = this.directory.elsewhere(nodeId);
      if (at !== undefined) this.deps.gateway.release(nodeId, at.connectedAtMs);
    }
  }

  private async beat(): Promise<void> {
    await this.directory.beat();
    if (!this.deps.leadership.leading) return;
    await this.adoptOrphans();
    await this.dropUndeliverable();
  }

  /**
   * Commands left for replicas that died are never taken: their workers reconnect elsewhere and
   * are sent what matters again (resends), so the rows are dropped. Only rows older than
   * `deadAfterMs`: a replica this one has not heard from yet may be alive and about to take them.
   */
  private async dropUndeliverable(): Promise<void> {
    await this.deps.db
      .deleteFrom("replica_commands")
      .where("replica_id", "not in", this.directory.aliveReplicas())
      .where("created_at", "<", this.deps.clock.now() - this.options.deadAfterMs)
      .execute();
  }

  private async adoptOrphans(): Promise<void> {
    const orphans = this.directory.orphans().filter((nodeId) => !this.deps.gateway.holds(nodeId));
    if (orphans.length === 0) return;
    const online = await this.deps.db
      .selectFrom("nodes")
      .select(["id", "last_seen_at"])
      .where("id", "in", orphans)
      .where("status", "in", NODE_STATUSES.filter(isOnline))
      .execute();
    const now = this.deps.clock.now();
    for (const node of online)
      this.deps.gateway.adopt(node.id, toNumberOrNull(node.last_seen_at) ?? now);
  }
}
