import type { FastifyBaseLogger } from "fastify";
import type { Clock } from "../../core/clock.ts";
import { formatMoney } from "../../core/money.ts";
import type { Leadership } from "../replicas/leader-election.ts";
import type { RewardBlocks } from "./reward-blocks.ts";

/**
 * Pays finished hours their reward blocks: once at start (the hours missed while no coordinator
 * ran), then every `everyMs`, on the leader only (its writes fenced by its term), one run at a
 * time; a run catches up at most `maxBlocksPerRun` hours, the next run goes on.
 */
export class RewardBlockTicker {
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<void> | undefined;
  private stopped = false;

  constructor(
    private readonly deps: {
      blocks: Pick<RewardBlocks, "payDue">;
      leadership: Pick<Leadership, "asLeader">;
      clock: Clock;
      logger: FastifyBaseLogger;
    },
    private readonly everyMs: number,
  ) {}

  start(): void {
    void this.run();
    this.timer = setInterval(() => void this.run(), this.everyMs);
    this.timer.unref();
  }

  /** One run unless one is under way; resolves when it is done (errors are logged). */
  run(): Promise<void> {
    if (this.stopped) return Promise.resolve();
    const { blocks, leadership, clock, logger } = this.deps;
    this.running ??= leadership
      .asLeader(async () => {
        for (const block of await blocks.payDue(clock.now()))
          logger.info(
            {
              hour: block.hour,
              minted: formatMoney(block.minted),
              nominated: block.nominated,
              rewarded: block.rewarded,
              postings: block.postings,
            },
            "reward block paid",
          );
      })
      .then(() => undefined)
      .catch((error: unknown) => logger.error({ err: error }, "reward block failed"))
      .finally(() => (this.running = undefined));
    return this.running;
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearInterval(this.timer);
    await this.running;
  }
}
