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

/** One NOTIFY's payload: the notices of one batch, in the order they were published. */
const NoticeBatch = z.array(ReplicaNotice).min(1);

const CHANNEL = "tandem_replicas";
/** PostgreSQL refuses a NOTIFY payload of 8,000 bytes or more. */
const MAX_PAYLOAD_BYTES = 7_900;
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
 * drop, then `resync`), and notices go out through the pool, batched. A notice reaches every
 * listening replica, its sender included, in the order each sender sent them.
 */
export class ReplicaBus {
  private session: pg.Client | undefined;
  /** The notices being gathered this turn of the event loop, and when they are sent. */
  private gathering: { payloads: string[]; sent: Promise<void> } | undefined;
  /** The last batch's end (settled either way). */
  private sent: Promise<void> = Promise.resolve();
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
      const parsed = NoticeBatch.safeParse(safeJson(payload));
      if (parsed.success) for (const notice of parsed.data) this.handlers.notice(notice);
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

  /**
   * Sends `notice`; resolves once it is out. Notices published in the same turn of the event loop
   * go out together, as one NOTIFY of a JSON array (several when they pass the payload limit),
   * and batches go out one after the other, in order: a burst of connects costs one round trip.
   */
  publish(notice: ReplicaNotice): Promise<void> {
    if (this.gathering === undefined) {
      const batch = { payloads: [] as string[], sent: Promise.resolve() };
      batch.sent = this.sent
        .then(() => new Promise<void>((resolve) => setImmediate(resolve)))
        .then(() => {
          this.gathering = undefined;
          return this.send(batch.payloads);
        });
      this.gathering = batch;
      this.sent = batch.sent.catch(() => undefined);
    }
    this.gathering.payloads.push(JSON.stringify(notice));
    return this.gathering.sent;
  }

  private async send(payloads: string[]): Promise<void> {
    for (const chunk of chunked(payloads, MAX_PAYLOAD_BYTES))
      await sql`select pg_notify(${CHANNEL}, ${chunk})`.execute(this.deps.db);
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

/** JSON arrays of the payloads, in order, each at most `maxBytes` (a notice is far smaller). */
function chunked(payloads: readonly string[], maxBytes: number): string[] {
  const chunks: string[] = [];
  let current: string[] = [];
  let bytes = 2;
  for (const payload of payloads) {
    const size = Buffer.byteLength(payload) + 1;
    if (current.length > 0 && bytes + size > maxBytes) {
      chunks.push(`[${current.join(",")}]`);
      current = [];
      bytes = 2;
    }
    current.push(payload);
    bytes += size;
  }
  if (current.length > 0) chunks.push(`[${current.join(",")}]`);
  return chunks;
}

function safeJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}
