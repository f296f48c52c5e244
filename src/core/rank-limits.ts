/**
 * A rank's limits from its node's offer and its cluster's ask: each limit asked replaces the
 * offer's, each not asked is the offer's. Placement keeps asks within offers; the worker checks
 * again (its offer may have shrunk since), and the coordinator shows the result per rank.
 */
import type { RankOffer } from "./placement.ts";

export type RankAsk = { readonly [K in keyof RankOffer]?: number | undefined };

const KEYS = ["memoryMiB", "cpuCores", "pids", "diskMiB"] as const satisfies ReadonlyArray<
  keyof RankOffer
>;

/** The rank's limits, or the first limit asked beyond the offer. */
export function limitsWithin(
  offer: RankOffer,
  ask: RankAsk | undefined,
):
  | { ok: true; limits: RankOffer }
  | { ok: false; limit: keyof RankOffer; asked: number; offered: number } {
  const limits = { ...offer };
  for (const key of KEYS) {
    const asked = ask?.[key];
    if (asked === undefined) continue;
    if (asked > offer[key]) return { ok: false, limit: key, asked, offered: offer[key] };
    limits[key] = asked;
  }
  return { ok: true, limits };
}
