import { z } from "zod";

/**
 * Money in answers: a decimal string with exactly 6 decimals, and the currency's code. Apart from
 * the wallet's bodies (wallet.ts re-exports them) so that a module needing only these, such as
 * nodes.ts, does not build every wallet schema (the CLI imports a command's schemas on first use).
 */
export const MoneyString = z
  .string()
  .regex(/^-?\d+\.\d{6}$/)
  .describe("amount, a decimal string with exactly 6 decimals");
export const CurrencyCode = z.enum(["TDM", "USDC", "USD"]);
export type CurrencyCode = z.infer<typeof CurrencyCode>;
