import { z } from "zod";
import { ErrorCode, TandemError } from "../../../core/errors.ts";
import { parseMoneyOrThrow, units } from "../../../core/money.ts";
import { PriceRequest } from "../../../protocol/amounts.ts";
import { NodeIdParams } from "../../../protocol/nodes.ts";
import { appendHistory } from "../../registry/node-history.ts";
import { formatUnits } from "../../scheduler/cluster-store.ts";
import { callerOf } from "../auth.ts";
import type { ApiDeps, ZodApp } from "../server.ts";
import { runInTransaction } from "../../store/transaction.ts";

export const SetPriceRequest = z.strictObject({
  /** Price of the whole node per hour, US dollars (converted to other currencies by the oracle). */
  pricePerHour: PriceRequest,
});
export const SetPriceResponse = z.strictObject({
  nodeId: z.string(),
  pricePerHour: z.string(),
  currency: z.literal("USD"),
});

/** Market mode (DESIGN §6): a supplier prices its own nodes; every change lands in the node's history. */
export function pricingRoutes(app: ZodApp, { db, config, clock, events }: ApiDeps): void {
  app.put(
    "/v1/nodes/:id/price",
    {
      config: { roles: ["supplier"] },
      schema: {
        tags: ["nodes"],
        params: NodeIdParams,
        body: SetPriceRequest,
        response: { 200: SetPriceResponse },
      },
    },
    async (request) => {
      const principal = callerOf(request);
      if (config.pricingMode !== "market") {
        throw new TandemError(
          ErrorCode.CONFLICT,
          "this network prices nodes from its catalog (pricing mode `catalog`)",
        );
      }
      const price = parseMoneyOrThrow(request.body.pricePerHour, { field: "pricePerHour" });
      const nowMs = clock.now();
      await runInTransaction(db, async (tx) => {
        const node = await tx
          .selectFrom("nodes")
          .select(["account_id", "price_per_hour"])
          .where("id", "=", request.params.id)
          .executeTakeFirst();
        // Someone else's node reads as absent, so node ownership cannot be probed.
        if (
          node === undefined ||
          (node.account_id !== principal.accountId && !principal.roles.includes("admin"))
        ) {
          throw new TandemError(ErrorCode.NOT_FOUND, `no node ${request.params.id} of yours`);
        }
        await tx
          .updateTable("nodes")
          .set({ price_per_hour: price })
          .where("id", "=", request.params.id)
          .execute();
        await appendHistory(tx, {
          nodeId: request.params.id,
          atMs: nowMs,
          actor: `account:${principal.accountId}`,
          action: "metadata",
          detail: {
            changed: ["price"],
            pricePerHour: formatUnits(price),
            currency: "USD",
            previous: node.price_per_hour === null ? null : formatUnits(units(node.price_per_hour)),
          },
        });
      });
      events.emit("node:metadata", { nodeId: request.params.id, atMs: nowMs });
      return {
        nodeId: request.params.id,
        pricePerHour: formatUnits(price),
        currency: "USD" as const,
      };
    },
  );
}
