import {
  DEFAULT_EMISSION_SCHEDULE,
  emissionHourAt,
  hourlyEmission,
} from "../../../core/emission.ts";
import { formatMoney } from "../../../core/money.ts";
import {
  AccountRewards,
  EmissionView,
  RewardBlockList,
  RewardBlockListQuery,
  RewardBlockParams,
  RewardBlockQuery,
  RewardBlockView,
  TokenView,
} from "../../../protocol/token.ts";
import { accountRewards, blockView, listBlocks } from "../../economics/reward-block-queries.ts";
import { callerOf } from "../auth.ts";
import type { ApiDeps, ZodApp } from "../server.ts";

/** The native token's public figures: its supply, the emission schedule, the reward blocks. */
export function tokenRoutes(
  app: ZodApp,
  { config, clock, db, tokenFigures }: Pick<ApiDeps, "config" | "clock" | "db" | "tokenFigures">,
): void {
  /**
   * Supply from the ledger (economics/supply.ts): genesis, emitted (by reward blocks), burned,
   * staked; kept in memory and refreshed (economics/token-figures.ts says how fresh).
   */
  app.get(
    "/v1/token",
    {
      schema: {
        tags: ["token"],
        summary: "TDM supply: maximum, genesis, emitted, burned, total, staked, circulating",
        response: { 200: TokenView },
      },
    },
    (): Promise<TokenView> => tokenFigures.view(),
  );

  const schedule = DEFAULT_EMISSION_SCHEDULE;
  const years = schedule.years.map((total, i) => ({ year: i + 1, total: formatMoney(total) }));
  const genesisAt = new Date(config.genesisAtMs).toISOString();

  app.get(
    "/v1/token/emission",
    {
      schema: {
        tags: ["token"],
        summary: "TDM emission: each of the 20 years' totals, and what the current hour emits",
        response: { 200: EmissionView },
      },
    },
    (): EmissionView => {
      const hour = emissionHourAt(clock.now(), config.genesisAtMs);
      return { years, hourly: formatMoney(hourlyEmission(hour, schedule)), hour, genesisAt };
    },
  );

  app.get(
    "/v1/token/blocks",
    {
      schema: {
        tags: ["token"],
        summary: "hourly reward blocks, newest first: minted, nodes nominated, rewarded, refused",
        querystring: RewardBlockListQuery,
        response: { 200: RewardBlockList },
      },
    },
    (request) => listBlocks(db, request.query),
  );

  app.get(
    "/v1/token/blocks/:hour",
    {
      schema: {
        tags: ["token"],
        summary:
          "one reward block and a page of its nodes: each rewarded share, each refusal's reason",
        params: RewardBlockParams,
        querystring: RewardBlockQuery,
        response: { 200: RewardBlockView },
      },
    },
    (request) => {
      const { limit, cursor, outcome } = request.query;
      return blockView(db, request.params.hour, {
        limit,
        cursor,
        ...(outcome === undefined ? {} : { outcome }),
      });
    },
  );

  app.get(
    "/v1/rewards",
    {
      config: { roles: ["consumer", "supplier"] },
      schema: {
        tags: ["token"],
        summary:
          "what you earned from reward blocks: commission on your nodes, rewards on your stakes",
        response: { 200: AccountRewards },
      },
    },
    (request) => accountRewards(db, config.database, callerOf(request).accountId),
  );
}
