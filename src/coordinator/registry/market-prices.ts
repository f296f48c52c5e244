import type { Kysely } from "kysely";
import { ErrorCode, TandemError } from "../../core/errors.ts";
import { formatMoney, units, type Money } from "../../core/money.ts";
import type { CoordinatorEvents } from "../events.ts";
import type { Database } from "../store/schema.ts";
import { runInTransaction } from "../store/transaction.ts";
import { appendHistory } from "./node-history.ts";

/**
 * Market mode (DESIGN §6): a supplier prices its own nodes, in US dollars per node-hour; every
 * change lands in the node's public history, and `node:metadata` tells placement once it commits.
 */
export class MarketPrices {
  constructor(
    private readonly db: Kysely<Database>,
    private readonly events: CoordinatorEvents,
  ) {}

  /** Sets `nodeId`'s price; someone else's node (unless an admin asks) reads as absent. */
  async set(
    nodeId: string,
    price: Money,
    actor: { accountId: string; admin: boolean },
    nowMs: number,
  ): Promise<void> {
    await runInTransaction(this.db, async (tx) => {
      const node = await tx
        .selectFrom("nodes")
        .select(["account_id", "price_per_hour"])
        .where("id", "=", nodeId)
        .executeTakeFirst();
      // So node ownership cannot be probed.
      if (node === undefined || (node.account_id !== actor.accountId && !actor.admin))
        throw new TandemError(ErrorCode.NOT_FOUND, `no node ${nodeId} of yours`);
      await tx
        .updateTable("nodes")
        .set({ price_per_hour: price })
        .where("id", "=", nodeId)
        .execute();
      await appendHistory(tx, {
        nodeId,
        atMs: nowMs,
        actor: `account:${actor.accountId}`,
        action: "metadata",
        detail: {
          changed: ["price"],
          pricePerHour: formatMoney(price),
          currency: "USD",
          previous: node.price_per_hour === null ? null : formatMoney(units(node.price_per_hour)),
        },
      });
    });
    this.events.emit("node:metadata", { nodeId, atMs: nowMs });
  }
}
