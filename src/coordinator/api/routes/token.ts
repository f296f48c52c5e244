import {
  DEFAULT_EMISSION_SCHEDULE,
  emissionHourAt,
  hourlyEmission,
} from "../../../core/emission.ts";
import { formatMoney } from "../../../core/money.ts";
import { EmissionView, TokenView } from "../../../protocol/token.ts";
import { tokenSupply, tokenView } from "../../economics/supply.ts";
import type { ApiDeps, ZodApp } from "../server.ts";

/** The native token's public figures: its supply and the emission schedule. */
export function tokenRoutes(
  app: ZodApp,
  { config, clock, db }: Pick<ApiDeps, "config" | "clock" | "db">,
): void {
  /**
   * Supply from the ledger (economics/supply.ts): genesis, emitted, burned, staked. `emitted`
   * stays "0.000000" until reward blocks mint the hourly emission (issue 16 item 4).
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
    async (): Promise<TokenView> => tokenView(await tokenSupply(db)),
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
}
