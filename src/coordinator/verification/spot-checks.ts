import type { FastifyBaseLogger } from "fastify";
import type { Kysely } from "kysely";
import type { Clock } from "../../core/clock.ts";
import type { CoordinatorEvents } from "../events.ts";
import type { Database } from "../store/schema.ts";

/** A failed proof's first retry, ms (then doubling; see `proofEnded`). */
const RETRY_FIRST_MS = 30_000;

/** Starts proofs of connected nodes (the worker gateway). */
export interface ProofStarter {
  /**
   * Starts a proof of the node's hardware now; false when its worker is not connected or a proof
   * of it is already under way.
   */
  startProof(nodeId: string): boolean;
}

export interface SpotCheckOptions {
  /** The longest an idle node goes without a proof, ms (production default: one hour). */
  intervalMs: number;
  /** How often due checks are looked for, ms (default: a twentieth of the interval, ≤ 10 s). */
  tickMs?: number;
  /** Nodes looked at per tick, oldest proof first (default 1000). */
  batch?: number;
}

/**
 * Spot checks (issue 15, DESIGN.md §5.2 "challenges recur at random"): every idle node is proven
 * again at a random time between half the interval and the interval after its last proof, so a
 * supplier cannot tell when the next one comes, and no idle node goes longer than the interval
 * unproven. A node leased when its check falls due is checked once it is idle again (proofs never
 * run during a lease). A node that failed (unverified, still connected) is tried again after a
 * back-off, so an honest node caught by a transient fault comes back by itself.
 *
 * Due times live in this process (a restart draws new ones, still within the interval of the last
 * proof, which `verified_at` records); the proof itself and its verdict go through the gateway.
 */
export class SpotChecks {
  /** When each node's next check is due, epoch ms (drawn once per proof). */
  private readonly due = new Map<string, number>();
  /** Failed proofs in a row, per node (the retry's back-off). */
  private readonly failures = new Map<string, number>();
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<void> | undefined;
  private readonly unsubscribe: Array<() => void> = [];

  constructor(
    private readonly deps: {
      db: Kysely<Database>;
      clock: Clock;
      starter: ProofStarter;
      events: CoordinatorEvents;
      logger: FastifyBaseLogger;
      /** Uniform in [0, 1); Math.random in production. */
      random: () => number;
    },
    private readonly options: SpotCheckOptions,
  ) {}

  /** Follows recorded proofs (each draws its node's next check) and looks for due checks. */
  start(): void {
    this.unsubscribe.push(
      this.deps.events.on("node:proven", ({ nodeId, passed }) => this.proofEnded(nodeId, passed)),
      this.deps.events.on("device:revoked", ({ nodeId }) => this.forget(nodeId)),
    );
    const tickMs = this.options.tickMs ?? Math.min(10_000, this.options.intervalMs / 20);
    this.timer = setInterval(() => {
      this.running ??= this.tick()
        .then(() => undefined)
        .catch((error: unknown) => this.deps.logger.error({ err: error }, "spot checks failed"))
        .finally(() => (this.running = undefined));
    }, tickMs);
    this.timer.unref();
  }

  async stop(): Promise<void> {
    clearInterval(this.timer);
    for (const off of this.unsubscribe.splice(0)) off();
    await this.running;
  }

  /**
   * A proof of the node ended: after a pass its next check is drawn from now; after a failure it
   * is tried again sooner, 30 s doubling per failure in a row up to half the interval (+ up to
   * half again at random), so an honest node caught by a transient fault (a loaded machine, a
   * helper that crashed) is back within minutes while a failing one costs little.
   */
  proofEnded(nodeId: string, passed: boolean): void {
    const nowMs = this.deps.clock.now();
    if (passed) {
      this.failures.delete(nodeId);
      this.due.set(nodeId, this.draw(nowMs));
      return;
    }
    const failures = (this.failures.get(nodeId) ?? 0) + 1;
    this.failures.set(nodeId, failures);
    const waitMs = Math.min(this.options.intervalMs / 2, RETRY_FIRST_MS * 2 ** (failures - 1));
    this.due.set(nodeId, nowMs + waitMs + Math.floor(this.deps.random() * (waitMs / 2)));
  }

  /** Starts every check that is due on an idle node; returns the nodes it started. */
  async tick(): Promise<string[]> {
    const nowMs = this.deps.clock.now();
    const batch = this.options.batch ?? 1000;
    // Available nodes this process has drawn no time for (it restarted, or they were proven before
    // it ran): due within the interval of their last proof.
    const unknown = await this.deps.db
      .selectFrom("nodes")
      .select(["id", "verified_at"])
      .where("status", "=", "available")
      .where("verified_at", "<=", nowMs - this.options.intervalMs / 2)
      .orderBy("verified_at")
      .limit(batch)
      .execute();
    for (const row of unknown)
      if (!this.due.has(row.id)) this.due.set(row.id, this.draw(Number(row.verified_at)));
    const dueIds = [...this.due]
      .filter(([, atMs]) => atMs <= nowMs)
      .map(([id]) => id)
      .slice(0, batch);
    if (dueIds.length === 0) return [];
    const statuses = new Map(
      (
        await this.deps.db
          .selectFrom("nodes")
          .select(["id", "status"])
          .where("id", "in", dueIds)
          .execute()
      ).map((r) => [r.id, r.status]),
    );
    const started: string[] = [];
    for (const id of dueIds) {
      const status = statuses.get(id);
      if (status === "leased" || status === "standby") continue; // checked once idle again
      if (status !== "available" && status !== "unverified") {
        this.due.delete(id); // offline or gone: proven when it connects
        continue;
      }
      if (this.deps.starter.startProof(id)) {
        this.due.delete(id);
        started.push(id);
      }
    }
    return started;
  }

  /** Forgets a node that left (revoked, or its worker gone for good). */
  forget(nodeId: string): void {
    this.due.delete(nodeId);
    this.failures.delete(nodeId);
  }

  private draw(fromMs: number): number {
    const half = this.options.intervalMs / 2;
    return fromMs + half + Math.floor(this.deps.random() * half);
  }
}
