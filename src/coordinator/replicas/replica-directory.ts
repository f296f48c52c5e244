import type { Kysely } from "kysely";
import type { Clock } from "../../core/clock.ts";
import type { Database } from "../store/schema.ts";
import type { ReplicaNotice } from "./replica-bus.ts";

/** Where a worker's WebSocket is held. */
export interface WorkerPresence {
  replicaId: string;
  /** Where it connected from; null for a node adopted from a dead replica (not connected). */
  address: string | null;
  behindNat: boolean;
  /** When that connection was accepted, ms (the holding replica's clock). */
  connectedAtMs: number;
}

export interface ReplicaDirectoryOptions {
  /** How often each replica says it is alive, ms. */
  aliveEveryMs: number;
  /** A replica not heard from this long is dead: its workers are orphans, ms. */
  deadAfterMs: number;
}

/**
 * Which replica holds each worker's WebSocket, and which replicas are alive, as this replica
 * knows it: who holds what is read from the database at start (and after a gap in notices), then
 * kept by notices (./replica-bus.ts), which alone say who is alive. Synchronous reads, for the
 * scheduler's WorkerChannel.
 */
export class ReplicaDirectory {
  private readonly nodes = new Map<string, WorkerPresence>();
  private readonly aliveAt = new Map<string, number>();

  constructor(
    readonly replicaId: string,
    private readonly deps: {
      db: Kysely<Database>;
      clock: Clock;
      publish: (notice: ReplicaNotice) => Promise<void>;
    },
    private readonly options: ReplicaDirectoryOptions,
  ) {}

  /**
   * Reads every worker's presence from the database. Which replicas are alive it learns only from
   * their notices, never from a stored time: a replica killed a moment ago looks as fresh in the
   * table as a live one, so at start every other replica counts as dead until it speaks (within
   * `aliveEveryMs`), and this replica watches their workers until then.
   */
  async load(): Promise<void> {
    const presence = await this.deps.db
      .selectFrom("worker_presence")
      .select(["node_id", "replica_id", "address", "behind_nat", "connected_at"])
      .execute();
    this.nodes.clear();
    for (const p of presence)
      this.nodes.set(p.node_id, {
        replicaId: p.replica_id,
        address: p.address,
        behindNat: p.behind_nat === 1,
        connectedAtMs: Number(p.connected_at),
      });
  }

  onNotice(notice: ReplicaNotice): void {
    switch (notice.type) {
      case "alive":
        this.aliveAt.set(notice.replicaId, notice.atMs);
        return;
      case "connected": {
        // Notices of two replicas arrive in either order: the later connection is the worker's.
        const known = this.nodes.get(notice.nodeId);
        if (known !== undefined && known.connectedAtMs > notice.atMs) return;
        this.nodes.set(notice.nodeId, {
          replicaId: notice.replicaId,
          address: notice.address,
          behindNat: notice.behindNat,
          connectedAtMs: notice.atMs,
        });
        return;
      }
      case "left":
        this.aliveAt.delete(notice.replicaId);
        return;
      case "commands":
      case "node":
      case "revoked":
        return;
    }
  }

  /** Where the worker of `nodeId` is held, when at another replica that is alive. */
  elsewhere(nodeId: string): WorkerPresence | undefined {
    const at = this.nodes.get(nodeId);
    if (at === undefined || at.replicaId === this.replicaId || !this.isAlive(at.replicaId))
      return undefined;
    return at;
  }

  /** When `replicaId` last said it was alive (ms), if it is alive. */
  aliveAtMs(replicaId: string): number | undefined {
    const at = this.aliveAt.get(replicaId);
    return at !== undefined && this.isAlive(replicaId) ? at : undefined;
  }

  isAlive(replicaId: string): boolean {
    if (replicaId === this.replicaId) return true;
    const at = this.aliveAt.get(replicaId);
    return at !== undefined && this.deps.clock.now() - at < this.options.deadAfterMs;
  }

  /** The replicas alive now, this one included. */
  aliveReplicas(): string[] {
    return [this.replicaId, ...[...this.aliveAt.keys()].filter((id) => this.isAlive(id))];
  }

  /** Nodes whose worker `replicaId` holds. */
  heldBy(replicaId: string): string[] {
    return [...this.nodes].filter(([, at]) => at.replicaId === replicaId).map(([nodeId]) => nodeId);
  }

  /** Nodes whose worker another live replica holds. */
  heldElsewhere(): string[] {
    return [...this.nodes.keys()].filter((nodeId) => this.elsewhere(nodeId) !== undefined);
  }

  /** Nodes whose worker was held by a replica now dead (none of them this one). */
  orphans(): string[] {
    return [...this.nodes]
      .filter(([, at]) => at.replicaId !== this.replicaId && !this.isAlive(at.replicaId))
      .map(([nodeId]) => nodeId);
  }

  /**
   * Records that this replica holds the worker of `nodeId`, connected at `connectedAtMs`, and
   * tells the others. A later connection recorded meanwhile by another replica is left in place.
   */
  async hold(
    nodeId: string,
    address: string | null,
    behindNat: boolean,
    connectedAtMs: number,
  ): Promise<void> {
    const row = {
      node_id: nodeId,
      replica_id: this.replicaId,
      address,
      behind_nat: behindNat ? 1 : 0,
      connected_at: connectedAtMs,
    };
    await this.deps.db
      .insertInto("worker_presence")
      .values(row)
      .onConflict((oc) =>
        oc
          .column("node_id")
          .doUpdateSet(row)
          .where("worker_presence.connected_at", "<=", connectedAtMs),
      )
      .execute();
    const connected: ReplicaNotice = {
      type: "connected",
      replicaId: this.replicaId,
      nodeId,
      atMs: connectedAtMs,
      address,
      behindNat,
    };
    this.onNotice(connected);
    await this.deps.publish(connected);
  }

  /** Says this replica is alive: to the others, and in the database for operators to read. */
  async beat(): Promise<void> {
    const now = this.deps.clock.now();
    await this.deps.db
      .insertInto("coordinator_replicas")
      .values({ id: this.replicaId, started_at: now, alive_at: now })
      .onConflict((oc) => oc.column("id").doUpdateSet({ alive_at: now }))
      .execute();
    await this.deps.publish({ type: "alive", replicaId: this.replicaId, atMs: now });
  }

  /** Closing: the others need not wait `deadAfterMs` to see it gone. */
  async leave(): Promise<void> {
    await this.deps.db
      .deleteFrom("coordinator_replicas")
      .where("id", "=", this.replicaId)
      .execute();
    await this.deps.publish({ type: "left", replicaId: this.replicaId });
  }
}
