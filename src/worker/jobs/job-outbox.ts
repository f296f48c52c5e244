import type {
  JobExitAckMessage,
  JobStartMessage,
  WorkerMessage,
} from "../../protocol/worker-messages.ts";

type JobAccepted = Extract<WorkerMessage, { type: "job-accepted" }>;
type JobExit = Extract<WorkerMessage, { type: "job-exit" }>;

/** One run of a rank: `job-start`, `job-accepted`, `job-exit` and the ack all carry these. */
function runKey(run: { clusterId: string; rank: number; attempt: number }): string {
  return `${run.clusterId}/${run.rank}/${run.attempt}`;
}

/**
 * The job messages the coordinator must not miss, between the job supervisor and the link.
 *
 * A message sent while the link is down is gone, and so is one the coordinator received but died
 * before recording. So the outbox remembers, per run, the `job-accepted` of every run still going
 * and the `job-exit` of every run until the coordinator acknowledges it (`job-exit-ack`), and
 * sends them all again after each welcome. The coordinator treats both as idempotent: an accept
 * for a lease already running or an exit for a lease already ended changes nothing.
 *
 * A run whose exit is still unacknowledged has run here: a `job-start` for it (the coordinator
 * resends the starts of leases it still sees reserved after a reconnect) must not run it twice.
 */
export class JobOutbox {
  private readonly accepted = new Map<string, JobAccepted>();
  private readonly exits = new Map<string, { message: JobExit; sentAtMs: number }>();
  /** Runs stopped by self-fencing, with why: their exits say so. */
  private readonly fenced = new Map<string, string>();

  constructor(
    private readonly send: (message: WorkerMessage) => void,
    private readonly now: () => number = () => performance.now(),
  ) {}

  /** Sends through the link, remembering what must survive a lost link. */
  post(message: WorkerMessage): void {
    if (message.type === "job-accepted") this.accepted.set(runKey(message), message);
    if (message.type === "job-exit") {
      const key = runKey(message);
      const fence = this.fenced.get(key);
      this.fenced.delete(key);
      if (fence !== undefined)
        message = { ...message, fenced: true, error: message.error ?? fence };
      this.accepted.delete(key);
      this.exits.set(key, { message, sentAtMs: this.now() });
    }
    this.send(message);
  }

  /** Every live run is being stopped by self-fencing: their exits will carry `fenced`. */
  fence(reason: string): void {
    for (const key of this.accepted.keys()) this.fenced.set(key, reason);
  }

  acknowledged(ack: JobExitAckMessage): void {
    this.exits.delete(runKey(ack));
  }

  /** True when this run already ended here and its exit is not yet acknowledged. */
  hasEnded(job: JobStartMessage): boolean {
    return this.exits.has(runKey(job));
  }

  /** After a welcome: every live run's acceptance, then every unacknowledged exit. */
  resend(): void {
    for (const message of this.accepted.values()) this.send(message);
    for (const exit of this.exits.values()) this.send(exit.message);
  }

  /**
   * Sends again each exit unacknowledged for `afterMs` while the link stayed up: the coordinator
   * acknowledges only what it recorded, so one whose handling failed is retried without waiting
   * for a reconnect.
   */
  resendOverdue(afterMs: number): void {
    const now = this.now();
    for (const exit of this.exits.values()) {
      if (now - exit.sentAtMs < afterMs) continue;
      exit.sentAtMs = now;
      this.send(exit.message);
    }
  }

  get unacknowledgedExits(): number {
    return this.exits.size;
  }
}
