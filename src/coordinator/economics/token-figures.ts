import type { Kysely } from "kysely";
import type { Clock } from "../../core/clock.ts";
import type { TokenView } from "../../protocol/token.ts";
import type { CoordinatorEvents } from "../events.ts";
import type { Database } from "../store/schema.ts";
import { tokenSupply, tokenView } from "./supply.ts";

/**
 * `GET /v1/token`'s figures, kept in memory. Reading them sums the mint's and the burn's postings
 * and every stake escrow's balance: ~0.1 s on a network of 1,000,000 stakes (bench/RESULTS.md,
 * "Reward blocks"), far over the 20 ms the endpoint must answer in. So the figures are read once
 * and served from memory:
 * - a change this coordinator makes to them (a reward block, a stake added, unbonded, withdrawn)
 *   drops them: the next reader waits for a fresh read, so it sees its own change;
 * - otherwise they are kept `ttlMs` (default 2 s), then re-read behind the readers, who get the
 *   kept figures meanwhile (stale-while-revalidate): a rental's burn, or a change made on another
 *   replica, shows within `ttlMs` plus one read.
 */
export class TokenFigures {
  private kept: { view: TokenView; atMs: number } | undefined;
  private loading: { generation: number; view: Promise<TokenView> } | undefined;
  private generation = 0;

  constructor(
    private readonly db: Kysely<Database>,
    events: CoordinatorEvents,
    private readonly clock: Clock,
    private readonly ttlMs = 2_000,
    private readonly onError: (error: unknown) => void = () => undefined,
  ) {
    events.on("token:block", () => this.invalidate());
    events.on("node:stake", () => this.invalidate());
  }

  async view(): Promise<TokenView> {
    const kept = this.kept;
    if (kept === undefined) return this.load();
    if (this.clock.now() - kept.atMs >= this.ttlMs) this.load().catch(this.onError);
    return kept.view;
  }

  /** Forgets the figures: the next reader waits for a read that began after this call. */
  invalidate(): void {
    this.generation += 1;
    this.kept = undefined;
  }

  private load(): Promise<TokenView> {
    if (this.loading?.generation === this.generation) return this.loading.view;
    const generation = this.generation;
    const view = tokenSupply(this.db)
      .then((supply) => {
        const fresh = tokenView(supply);
        if (generation === this.generation) this.kept = { view: fresh, atMs: this.clock.now() };
        return fresh;
      })
      .finally(() => {
        if (this.loading?.generation === generation) this.loading = undefined;
      });
    this.loading = { generation, view };
    return view;
  }
}
