import {
  DEFAULT_EMISSION_SCHEDULE,
  emissionHourAt,
  hourlyEmission,
} from "../../../core/emission.ts";
import { formatMoney } from "../../../core/money.ts";
import { EmissionView } from "../../../protocol/token.ts";
import type { ApiDeps, ZodApp } from "../server.ts";

/** The native token's public figures: the emission schedule. */
export function tokenRoutes(
  app: ZodApp,
  { config, clock }: Pick<ApiDeps, "config" | "clock">,
): void {
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
