import type { FastifyBaseLogger } from "fastify";
import { sql, type Kysely } from "kysely";
import type pg from "pg";
import { z } from "zod";
import type { Database } from "../store/schema.ts";

/**
 * What replicas tell each other (DESIGN.md §7), small enough for a NOTIFY payload (8,000 bytes):
 * a command for a worker is not sent itself, only word that commands wait for a replica in
 * `replica_commands`.
 */
export const ReplicaNotice = z.discriminatedUnion("type", [
  /** `replicaId` is alive at `atMs` (every `aliveEveryMs`). */
  z.strictObject({ type: z.literal("alive"), replicaId: z.string(), atMs: z.number() }),
  /**
   * The worker of `nodeId` connected to `replicaId` at `atMs` (when the connection was accepted):
   * any other replica stops watching it, unless it holds a connection of it accepted later.
   */
  z.strictObject({
    type: z.literal("connected"),
    replicaId: z.string(),
    nodeId: z.string(),
    atMs: z.number(),
    address: z.string().nullable(),
    behindNat: z.boolean(),
  }),
  /** Commands wait in `replica_commands` for the workers connected to `replicaId`. */
  z.strictObject({ type: z.literal("commands"), replicaId: z.string() }),
  /** A node changed (status, metadata, reputation) through `replicaId`: others reread it. */
  z.strictObject({ type: z.literal("node"), replicaId: z.string(), nodeId: z.string() }),
  /** A device was revoked through `replicaId`: whichever replica holds it closes its connection. */
  z.strictObject({
    type: z.literal("revoked"),
    replicaId: z.string(),
    deviceId: z.string(),
    nodeId: z.string(),
  }),
  /** `replicaId` is closing: its workers will connect elsewhere. */
  z.strictObject({ type: z.literal("left"), replicaId: z.string() }),
]);
export type ReplicaNotice = z.infer<typeof ReplicaNotice>;

const CHANNEL = "tandem_replicas";
/** After the listening session drops, the wait before it listens again, ms. */
const RELISTEN_AFTER_MS = 500;

export interface ReplicaBusHandlers {
  notice(notice: ReplicaNotice): void;
  /**
   * Listening again after a gap in which notices may have been missed: reread what they would
   * have said (presence, waiting commands).
   */
  resync(): void;
}

/**
 * PostgreSQL `LISTEN/NOTIFY` between replicas: one session of its own listens (reopened after a
 * drop, then `resync`), and notices go out through the pool. A notice reaches every listening
 * replica, its sender included, in the order each sender sent them.
 */
export class ReplicaBus {
  private session: pg.Client | undefined;
  private relisten: NodeJS.Timeout | undefined;
  private closed = false;

  constructor(
    private readonly deps: {
      db: Kysely<Database>;
      newSession: () => pg.Client;
      logger: FastifyBaseLogger;
    },
    private readonly handlers: ReplicaBusHandlers,
  ) {}

  /** Listens; resolves once notices are being received. */
  async start(): Promise<void> {
    const session = this.deps.newSession();
    session.on("notification", ({ channel, payload }) => {
      if (channel !== CHANNEL || payload === undefined) return;
      const parsed = ReplicaNotice.safeParse(safeJson(payload));
      if (parsed.success) this.handlers.notice(parsed.data);
      else this.deps.logger.warn({ payload }, "replica notice not understood");
    });
    session.on("error", (error) => this.dropped(session, error));
    session.on("end", () => this.dropped(session, new Error("listening session ended")));
    try {
      await session.connect();
      await session.query(`listen ${CHANNEL}`);
    } catch (error) {
      session.end().catch(() => undefined);
      throw error;
    }
    this.session = session;
  }

  async publish(notice: ReplicaNotice): Promise<void> {
    await sql`select pg_notify(${CHANNEL}, ${JSON.stringify(notice)})`.execute(this.deps.db);
  }

  async close(): Promise<void> {
    this.closed = true;
    clearTimeout(this.relisten);
    const session = this.session;
    this.session = undefined;
    await session?.end().catch(() => undefined);
  }

  private dropped(session: pg.Client, error: unknown): void {
    if (this.session !== session || this.closed) return;
    this.session = undefined;
    session.end().catch(() => undefined);
    this.deps.logger.warn(
      { err: error },
      "replica notices: listening session lost; listening again",
    );
    const again = () => {
      this.relisten = undefined;
      if (this.closed) return;
      this.start().then(
        () => this.handlers.resync(),
        (retryError: unknown) => {
          this.deps.logger.warn({ err: retryError }, "replica notices: cannot listen yet");
          this.relisten = setTimeout(again, RELISTEN_AFTER_MS);
          this.relisten.unref();
        },
      );
    };
    this.relisten = setTimeout(again, RELISTEN_AFTER_MS);
    this.relisten.unref();
  }
}

function safeJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}
