import { z } from "zod";
import { Amount } from "./clusters.ts";

/** One year of the emission schedule: its number (1 = the year from genesis) and its total, TDM. */
export const EmissionYear = z.strictObject({
  year: z.number().int().min(1),
  total: Amount,
});
export type EmissionYear = z.infer<typeof EmissionYear>;

/**
 * The TDM emission schedule (`GET /v1/token/emission`, public; src/core/emission.ts says how it is
 * made exact): every year's total, and what the hour now running emits.
 */
export const EmissionView = z.strictObject({
  /** Years 1 to 20, in order; they sum to the community pool, 300,000,000.000000. */
  years: z.array(EmissionYear),
  /** TDM the current hour emits ("0.000000" before genesis and after the last year). */
  hourly: Amount,
  /** The current hour, counted from genesis from 0 (negative before genesis). */
  hour: z.number().int(),
  /** The network's genesis time: hour 0 begins here. */
  genesisAt: z.iso.datetime(),
});
export type EmissionView = z.infer<typeof EmissionView>;

/**
 * TDM's supply (`GET /v1/token`, public), 6-decimal strings: total supply = genesis + emitted −
 * burned, never above `maxSupply`; circulating = total supply − staked (never below zero).
 */
export const TokenView = z.strictObject({
  maxSupply: Amount,
  genesis: Amount,
  /** Minted by hourly emission (reward blocks); "0.000000" until they exist. */
  emitted: Amount,
  /** TDM destroyed by the 0.5 % rental burn. */
  burned: Amount,
  totalSupply: Amount,
  /** On stake positions, active and unbonding. */
  staked: Amount,
  circulating: Amount,
});
export type TokenView = z.infer<typeof TokenView>;
