import type { FastifyBaseLogger } from "fastify";
import type pg from "pg";
import type { Clock } from "../../core/clock.ts";
import { runFenced } from "../store/leader-fence.ts";

/**
 * Which replica runs the singleton loops (settlement, expiry, uptime): every replica runs their
 * timers, and each pass goes through `asLeader`, which runs it only on the leader and fences what
 * it writes by the leader's term (../store/leader-fence.ts).
 */
export interface Leadership {
  /** This replica's id (`rep_…`), for logs, /v1/health and the leader row's holder. */
  readonly replicaId: string;
  /** Whether this replica leads now. */
  readonly leading: boolean;
  /** The term it leads under (PostgreSQL); undefined while it follows, and on SQLite. */
  readonly term: number | undefined;
  /** Runs `work` if this replica leads, fenced by its term; resolves false without running it otherwise. */
  asLeader(work: () => Promise<void>): Promise<boolean>;
  /** Takes part in the election (the first try is awaited: a lone replica leads before it serves). */
  start(): Promise<void>;
  /** Leaves it: a leader hands the lead on at once. */
  close(): Promise<void>;
}

/** One coordinator on SQLite: the only process, so always the leader, and nothing to fence. */
export class SoleLeader implements Leadership {
  readonly leading = true;
  readonly term = undefined;
  constructor(readonly replicaId: string) {}

  async asLeader(work: () => Promise<void>): Promise<boolean> {
    await work();
    return true;
  }

  start(): Promise<void> {
    return Promise.resolve();
  }

  close(): Promise<void> {
    return Promise.resolve();
  }
}

export interface LeaderElectionOptions {
  /** How often a follower tries to take the lead, and the leader shows its session is alive, ms. */
  pollMs: number;
  /**
   * A leader whose session says nothing for this long loses it, and the lock with it, ms: the
   * server ends a session idle that long (`idle_session_timeout`), so a leader paused by SIGSTOP
   * or stuck in a long pause stops leading without having to notice. Longer than `pollMs`.
   */
  leaseMs: number;
}

/** The advisory lock's key: one per database, "TNDMLEAD" read as 8 bytes. */
const LEADER_LOCK_KEY = "6074868046152155460";

/**
 * Leader election among replicas on one PostgreSQL (DESIGN.md §7). The leader holds a session
 * advisory lock on a connection of its own; when that session ends — the process died (the server
 * sees the socket close at once), or it fell silent past `leaseMs` — the server drops the lock and
 * the next follower to poll takes it, moving `coordinator_leader.term` up by one in the same
 * session: that term is the fencing token. Handover after a leader's SIGKILL thus takes at most one
 * `pollMs`; after a SIGSTOP, `leaseMs` plus one `pollMs`.
 */
export class PostgresLeaderElection implements Leadership {
  private session: pg.Client | undefined;
  private leaderTerm: number | undefined;
  private timer: NodeJS.Timeout | undefined;
  private polling: Promise<void> | undefined;
  private closed = false;

  constructor(
    readonly replicaId: string,
    private readonly deps: { newSession: () => pg.Client; clock: Clock; logger: FastifyBaseLogger },
    private readonly options: LeaderElectionOptions,
  ) {}

  get leading(): boolean {
    return this.leaderTerm !== undefined;
  }

  get term(): number | undefined {
    return this.leaderTerm;
  }

  async start(): Promise<void> {
    await this.poll();
    this.timer = setInterval(() => void this.poll(), this.options.pollMs);
    this.timer.unref();
  }

  async asLeader(work: () => Promise<void>): Promise<boolean> {
    const term = this.leaderTerm;
    if (term === undefined) return false;
    await runFenced(term, work);
    return true;
  }

  async close(): Promise<void> {
    this.closed = true;
    clearInterval(this.timer);
    await this.polling;
    // Ending the session releases the lock now: a follower takes over at its next poll.
    this.lose("closing");
  }

  private poll(): Promise<void> {
    this.polling ??= this.pollOnce().finally(() => (this.polling = undefined));
    return this.polling;
  }

  private async pollOnce(): Promise<void> {
    if (this.closed) return;
    try {
      if (this.session !== undefined && this.leaderTerm !== undefined) {
        await this.session.query("select 1");
        return;
      }
      this.session ??= await this.connect();
      const locked = await this.session.query<{ locked: boolean }>(
        "select pg_try_advisory_lock($1::bigint) as locked",
        [LEADER_LOCK_KEY],
      );
      if (locked.rows[0]?.locked !== true) return;
      const elected = await this.session.query<{ term: string }>(
        "update coordinator_leader set term = term + 1, holder = $1, elected_at = $2 where id = 1 returning term",
        [this.replicaId, this.deps.clock.now()],
      );
      const term = elected.rows[0]?.term;
      if (term === undefined)
        throw new Error("coordinator_leader has no row: migration 0027 missing");
      this.leaderTerm = Number(term);
      this.deps.logger.info({ term: this.leaderTerm }, "leading");
    } catch (error) {
      this.lose(error);
    }
  }

  private async connect(): Promise<pg.Client> {
    const session = this.deps.newSession();
    // A dropped session (the server ended it, the network broke) ends the lead at once.
    session.on("error", (error) => this.lose(error));
    await session.connect();
    await session.query(`set idle_session_timeout = ${Math.ceil(this.options.leaseMs)}`);
    return session;
  }

  /** Forgets the session and the term (a later poll starts over); says so if it was leading. */
  private lose(reason: unknown): void {
    const { session, leaderTerm } = this;
    this.session = undefined;
    this.leaderTerm = undefined;
    if (leaderTerm !== undefined)
      this.deps.logger.warn({ term: leaderTerm, err: reason }, "no longer leading");
    session?.removeAllListeners("error");
    session?.on("error", () => undefined);
    session?.end().catch(() => undefined);
  }
}
