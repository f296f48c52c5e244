import type { FastifyBaseLogger } from "fastify";
import type { Clock } from "../../core/clock.ts";
import type { Leadership } from "../replicas/leader-election.ts";
import type { NodeLifecycle } from "./node-lifecycle.ts";

/**
 * Recomputes every node's cached uptime figures every `everyMs`, on the leader only, one refresh
 * at a time; stopping ends the one under way between two of its batches.
 */
export class UptimeRefresher {
  private timer: NodeJS.Timeout | undefined;
  private refreshing: Promise<void> | undefined;
  private readonly stopping = new AbortController();

  constructor(
    private readonly deps: {
      lifecycle: Pick<NodeLifecycle, "refreshAllUptime">;
      leadership: Pick<Leadership, "asLeader">;
      clock: Clock;
      logger: FastifyBaseLogger;
    },
    private readonly everyMs: number,
  ) {}

  start(): void {
    this.timer = setInterval(() => {
      const { lifecycle, leadership, clock, logger } = this.deps;
      this.refreshing ??= leadership
        .asLeader(() => lifecycle.refreshAllUptime(clock.now(), this.stopping.signal))
        .then(() => undefined)
        .catch((error: unknown) => logger.error({ err: error }, "uptime refresh failed"))
        .finally(() => (this.refreshing = undefined));
    }, this.everyMs);
    this.timer.unref();
  }

  async stop(): Promise<void> {
    clearInterval(this.timer);
    this.stopping.abort();
    await this.refreshing;
  }
}
