import { z } from "zod";
import { ErrorCode, TandemError } from "../../../core/errors.ts";
import { parseMoneyOrThrow } from "../../../core/money.ts";
import { PriceRequest } from "../../../protocol/amounts.ts";
import { NodeIdParams } from "../../../protocol/nodes.ts";
import { formatUnits } from "../../scheduler/cluster-store.ts";
import { callerOf } from "../auth.ts";
import type { ApiDeps, ZodApp } from "../server.ts";

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
export function pricingRoutes(app: ZodApp, { marketPrices, config, clock }: ApiDeps): void {
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
      await marketPrices.set(
        request.params.id,
        price,
        { accountId: principal.accountId, admin: principal.roles.includes("admin") },
        clock.now(),
      );
      return {
        nodeId: request.params.id,
        pricePerHour: formatUnits(price),
        currency: "USD" as const,
      };
    },
  );
}
