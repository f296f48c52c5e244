import { z } from "zod";
import {
  MAX_AMOUNT_UNITS,
  MAX_PRICE_PER_HOUR_UNITS,
  formatMoney,
  parseMoney,
  units,
} from "../core/money.ts";

/**
 * Money on input: a decimal string with at most 6 decimals, checked here against one of two bounds
 * (src/core/money.ts says why they are what they are): `AmountRequest` for every amount, at most
 * `MAX_AMOUNT`, and `PriceRequest` for every price per node-hour, at most `MAX_PRICE_PER_HOUR`.
 * A refused amount is one issue whose `params` carry the `AmountProblem`; the API edge answers it
 * as `INVALID_AMOUNT` with `details: { problem, field, max }` (api/http-errors.ts).
 */
export const MAX_AMOUNT = formatMoney(units(MAX_AMOUNT_UNITS));
export const MAX_PRICE_PER_HOUR = formatMoney(units(MAX_PRICE_PER_HOUR_UNITS));

/** What a refused amount's zod issue carries in `params`. */
export interface AmountIssueParams {
  readonly amountProblem: string;
  readonly max: string;
}

function boundedAmount(maxUnits: bigint, max: string, what: string) {
  return z
    .string()
    .max(64)
    .superRefine((text, ctx) => {
      const parsed = parseMoney(text, { maxUnits });
      if (parsed.ok) return;
      const params: AmountIssueParams = { amountProblem: parsed.problem, max };
      ctx.addIssue({ code: "custom", message: parsed.message, params });
    })
    .describe(`${what} > 0 and ≤ ${max}, a decimal string with at most 6 decimals, e.g. "12.5"`);
}

export const AmountRequest = boundedAmount(MAX_AMOUNT_UNITS, MAX_AMOUNT, "amount");
export const PriceRequest = boundedAmount(
  MAX_PRICE_PER_HOUR_UNITS,
  MAX_PRICE_PER_HOUR,
  "price per node-hour",
);
