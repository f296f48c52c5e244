import type { FastifyBaseLogger } from "fastify";
import type { Kysely } from "kysely";
import type { Clock } from "../../core/clock.ts";
import { CoordinatorMessage } from "../../protocol/worker-messages.ts";
import type { WorkerChannel } from "../scheduler/worker-channel.ts";
import type { Database } from "../store/schema.ts";
import { runInTransaction } from "../store/transaction.ts";
import type { ReplicaNotice } from "./replica-bus.ts";
import type { ReplicaDirectory } from "./replica-directory.ts";

/** The workers connected to this replica: the gateway. */
export interface LocalWorkers extends WorkerChannel {
  holds(nodeId: string): boolean;
}

/** Commands handed over per read of `replica_commands`. */
const DELIVERY_BATCH = 500;

/**
 * The scheduler's WorkerChannel when coordinators run as replicas (DESIGN.md §7): a worker held
 * here is reached directly; one held by another live replica through `replica_commands` and a
 * notice to that replica, which hands the commands over in the order they were sent. What a
 * replica learns of a worker it does not hold comes from the directory: its address, whether it
 * is behind NAT, and as its served time the last sign of life of the replica holding it (that
 * replica's failure detector judges the worker itself).
 */
export class ReplicaWorkerChannel implements WorkerChannel {
  /** This replica's forwards, one after another, so commands keep their order. */
  private outbox: Promise<void> = Promise.resolve();
  private delivering: Promise<void> | undefined;
  private deliverAgain = false;

  constructor(
    private readonly local: LocalWorkers,
    private readonly directory: ReplicaDirectory,
    private readonly deps: {
      db: Kysely<Database>;
      clock: Clock;
      logger: FastifyBaseLogger;
      publish: (notice: ReplicaNotice) => Promise<void>;
    },
  ) {}

  send(nodeId: string, message: CoordinatorMessage): boolean {
    if (this.local.send(nodeId, message)) return true;
    const at = this.connectedElsewhere(nodeId);
    this.deps.logger.debug(
      { nodeId, to: at, type: message.type },
      "command for a worker held elsewhere",
    );
    if (at === undefined) return false;
    this.outbox = this.outbox
      .then(() => this.forward(at, nodeId, message))
      .catch((error: unknown) =>
        this.deps.logger.error({ err: error, nodeId, replica: at }, "command not forwarded"),
      );
    return true;
  }

  addressOf(nodeId: string): string | undefined {
    return this.local.addressOf(nodeId) ?? this.directory.elsewhere(nodeId)?.address ?? undefined;
  }

  behindNat(nodeId: string): boolean {
    if (this.local.holds(nodeId)) return this.local.behindNat(nodeId);
    return this.directory.elsewhere(nodeId)?.behindNat ?? false;
  }

  servedUntilMs(nodeId: string): number | undefined {
    const here = this.local.servedUntilMs(nodeId);
    if (here !== undefined) return here;
    const at = this.connectedElsewhere(nodeId);
    return at === undefined ? undefined : this.directory.aliveAtMs(at);
  }

  awaitingContact(nodeId: string): boolean {
    return this.connectedElsewhere(nodeId) === undefined && this.local.awaitingContact(nodeId);
  }

  /** Resolves once every command sent so far is in the database. */
  flushed(): Promise<void> {
    return this.outbox;
  }

  /** Hands the commands waiting for this replica to their workers (again if asked meanwhile). */
  deliver(): Promise<void> {
    if (this.delivering !== undefined) {
      this.deliverAgain = true;
      return this.delivering;
    }
    this.delivering = (async () => {
      do {
        this.deliverAgain = false;
        while ((await this.deliverBatch()) === DELIVERY_BATCH);
      } while (this.deliverAgain);
    })()
      .catch((error: unknown) =>
        this.deps.logger.error({ err: error }, "commands from other replicas not delivered"),
      )
      .finally(() => (this.delivering = undefined));
    return this.delivering;
  }

  /** The replica holding the worker's WebSocket, when another one that is alive and connected. */
  private connectedElsewhere(nodeId: string): string | undefined {
    const at = this.directory.elsewhere(nodeId);
    return at === undefined || at.address === null ? undefined : at.replicaId;
  }

  private async forward(replicaId: string, nodeId: string, message: CoordinatorMessage) {
    await this.deps.db
      .insertInto("replica_commands")
      .values({
        replica_id: replicaId,
        node_id: nodeId,
        message: JSON.stringify(message),
        created_at: this.deps.clock.now(),
      })
      .execute();
    await this.deps.publish({ type: "commands", replicaId });
  }

  /** Takes up to one batch of this replica's commands off the table and sends them; how many. */
  private async deliverBatch(): Promise<number> {
    const me = this.directory.replicaId;
    const taken = await runInTransaction(this.deps.db, async (tx) => {
      const ids = await tx
        .selectFrom("replica_commands")
        .select("id")
        .where("replica_id", "=", me)
        .orderBy("id")
        .limit(DELIVERY_BATCH)
        .forUpdate()
        .skipLocked()
        .execute();
      if (ids.length === 0) return [];
      return tx
        .deleteFrom("replica_commands")
        .where(
          "id",
          "in",
          ids.map((r) => r.id),
        )
        .returning(["id", "node_id", "message"])
        .execute();
    });
    taken.sort((a, b) => Number(a.id) - Number(b.id));
    this.deps.logger.debug({ commands: taken.length }, "commands from other replicas");
    for (const command of taken) {
      const message = CoordinatorMessage.safeParse(JSON.parse(command.message));
      if (!message.success) {
        this.deps.logger.error(
          { nodeId: command.node_id, issues: message.error.issues },
          "a command from another replica is not a coordinator message",
        );
        continue;
      }
      // A worker gone from here meanwhile gets what matters again when it reconnects (resends).
      const sent = this.local.send(command.node_id, message.data);
      this.deps.logger.debug({ nodeId: command.node_id, sent }, "command delivered");
    }
    return taken.length;
  }
}
