import type { Kysely } from "kysely";
import type { FastifyBaseLogger } from "fastify";
import type { Clock } from "../../core/clock.ts";
import { DEFAULT_EMISSION_SCHEDULE } from "../../core/emission.ts";
import { formatMoney } from "../../core/money.ts";
import type { Ledger } from "../billing/ledger.ts";
import type { CoordinatorEvents } from "../events.ts";
import { LeaderLoop } from "../replicas/leader-loop.ts";
import type { Leadership } from "../replicas/leader-election.ts";
import type { Database } from "../store/schema.ts";
import { DEFAULT_REWARD_BLOCK_OPTIONS, RewardBlocks } from "./reward-blocks.ts";
import type { StakeOptions } from "./stakes.ts";

/**
 * The leader's loop that pays finished hours their reward blocks (./reward-blocks.ts): once at
 * start (the hours missed while no coordinator ran), then every `everyMs`; a run catches up at
 * most a day of hours, the next run goes on.
 */
export function rewardBlockLoop(
  deps: {
    db: Kysely<Database>;
    ledger: Ledger;
    events: CoordinatorEvents;
    clock: Clock;
    leadership: Pick<Leadership, "asLeader">;
    logger: FastifyBaseLogger;
  },
  rules: { genesisAtMs: number; stake: StakeOptions; everyMs: number },
): LeaderLoop {
  const { clock, logger } = deps;
  const blocks = new RewardBlocks(
    deps.db,
    deps.ledger,
    deps.events,
    {
      genesisAtMs: rules.genesisAtMs,
      schedule: DEFAULT_EMISSION_SCHEDULE,
      minimums: rules.stake.minimums,
      defaultCommissionBps: rules.stake.defaultCommissionBps,
    },
    {
      ...DEFAULT_REWARD_BLOCK_OPTIONS,
      onProgress: (hour, paid, of) =>
        logger.debug({ hour, paid, of }, "reward block: payouts written"),
    },
  );
  return new LeaderLoop(
    "reward block",
    async () => {
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
    },
    deps,
    rules.everyMs,
  );
}
