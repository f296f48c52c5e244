import type { FastifyBaseLogger } from "fastify";
import type pg from "pg";
import { ErrorCode, TandemError } from "../../core/errors.ts";
import type { ClusterLocks } from "../scheduler/cluster-queue.ts";

export interface PostgresClusterLockOptions {
  /**
   * The locks' session ends when it says nothing this long (`idle_session_timeout`), so a replica
   * paused by SIGSTOP lets its clusters go after it, as the leader's lock does; kept alive by a
   * query every third of it. ms.
   */
  leaseMs: number;
  /** How long `hold` waits for clusters another replica holds before giving up (UNAVAILABLE), ms. */
  waitMs: number;
}

/** The first key of every cluster lock ("TNDC"), apart from the leader's single bigint key. */
const CLUSTER_LOCK_SPACE = 0x544e4443;
/** Retries of a cluster held elsewhere: the first after this many ms, doubling up to the most. */
const RETRY_FIRST_MS = 2;
const RETRY_MOST_MS = 50;

/**
 * Session advisory locks on a PostgreSQL session of this replica's own, keyed by a hash of the
 * cluster id (a collision only orders two clusters' work needlessly). Only ever tried, never
 * waited for in the server, so the one session serves every cluster at once; several clusters are
 * taken in key order, keeping those already held while waiting for the next, so two replicas
 * holding several never wait on each other in a circle. When the session drops (the server ended
 * it, the network broke), its locks are gone: work under way goes on, guarded as before by the
 * database's compare-and-set writes, and the next `hold` opens a new session.
 */
export class PostgresClusterLocks implements ClusterLocks {
  private session: Promise<pg.Client> | undefined;
  /** The session once open: only its loss lets the locks go. */
  private client: pg.Client | undefined;
  private keepAlive: NodeJS.Timeout | undefined;
  private closed = false;

  constructor(
    private readonly deps: { newSession: () => pg.Client; logger: FastifyBaseLogger },
    private readonly options: PostgresClusterLockOptions,
  ) {}

  async hold(clusterIds: readonly string[]): Promise<() => void> {
    const keys = [...new Set(clusterIds.map(lockKeyOf))].sort((a, b) => a - b);
    if (keys.length === 0) return () => undefined;
    const session = await this.connected();
    const deadline = Date.now() + this.options.waitMs;
    let held = 0;
    for (let wait = RETRY_FIRST_MS; ; wait = Math.min(wait * 2, RETRY_MOST_MS)) {
      held += await this.takePrefix(session, keys.slice(held));
      if (held === keys.length) return () => this.letGo(session, keys);
      if (Date.now() >= deadline) {
        this.letGo(session, keys.slice(0, held));
        throw new TandemError(
          ErrorCode.UNAVAILABLE,
          `cluster ${clusterIds.length === 1 ? clusterIds[0] : "set"} is held by another coordinator replica`,
          { details: { waitedMs: this.options.waitMs } },
        );
      }
      await new Promise((resolve) => setTimeout(resolve, wait));
    }
  }

  close(): Promise<void> {
    this.closed = true;
    this.drop();
    return Promise.resolve();
  }

  /**
   * Tries every key in one round trip and keeps the run taken from the start: the ones taken
   * after the first refused are let go again, so keys are only ever held in order.
   */
  private async takePrefix(session: pg.Client, keys: readonly number[]): Promise<number> {
    const tried = await session.query<{ taken: boolean }>(
      `select pg_try_advisory_lock(${CLUSTER_LOCK_SPACE}, k) as taken
         from unnest($1::int4[]) with ordinality as t(k, i) order by i`,
      [keys],
    );
    const taken = tried.rows.map((row) => row.taken);
    const prefix = taken.indexOf(false) === -1 ? keys.length : taken.indexOf(false);
    const outOfOrder = keys.filter((_, i) => i > prefix && taken[i] === true);
    if (outOfOrder.length > 0) this.letGo(session, outOfOrder);
    return prefix;
  }

  /** Unlocks without waiting: the session runs its queries in order, so a later `hold` follows it. */
  private letGo(session: pg.Client, keys: readonly number[]): void {
    if (keys.length === 0) return;
    session
      .query(
        `select pg_advisory_unlock(${CLUSTER_LOCK_SPACE}, k) from unnest($1::int4[]) as t(k)`,
        [keys],
      )
      .catch(() => undefined); // a dropped session has let them go already
  }

  private connected(): Promise<pg.Client> {
    if (this.closed)
      return Promise.reject(new TandemError(ErrorCode.UNAVAILABLE, "the coordinator is closing"));
    this.session ??= this.open().catch((error: unknown) => {
      this.drop();
      throw new TandemError(ErrorCode.UNAVAILABLE, "cluster locks: no database session", {
        cause: error,
      });
    });
    return this.session;
  }

  private async open(): Promise<pg.Client> {
    const session = this.deps.newSession();
    const lost = (error: unknown) => {
      if (this.closed || this.client !== session) return;
      this.deps.logger.warn({ err: error }, "cluster locks: session lost; its clusters are let go");
      this.drop();
    };
    session.on("error", lost);
    session.on("end", () => lost(new Error("session ended")));
    try {
      await session.connect();
      await session.query(`set idle_session_timeout = ${Math.ceil(this.options.leaseMs)}`);
    } catch (error) {
      session.removeAllListeners("end");
      session.end().catch(() => undefined);
      throw error;
    }
    this.keepAlive = setInterval(
      () => void session.query("select 1").catch(() => undefined),
      Math.max(1, Math.floor(this.options.leaseMs / 3)),
    );
    this.keepAlive.unref();
    this.client = session;
    return session;
  }

  private drop(): void {
    clearInterval(this.keepAlive);
    this.keepAlive = undefined;
    const dropped = this.client;
    this.session = undefined;
    this.client = undefined;
    dropped?.removeAllListeners("end");
    dropped?.end().catch(() => undefined);
  }
}

/** A cluster id's lock key: FNV-1a over its UTF-16 code units, as a signed 32-bit integer. */
export function lockKeyOf(clusterId: string): number {
  let hash = 0x811c9dc5;
  for (let i = 0; i < clusterId.length; i++) {
    hash ^= clusterId.charCodeAt(i);
    hash = Math.imul(hash, 0x01000193);
  }
  return hash | 0;
}
