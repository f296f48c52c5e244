import { commissionBpsOf } from "../../../core/stake.ts";
import { MAX_AMOUNT_UNITS, parseMoneyOrThrow } from "../../../core/money.ts";
import { NodeIdParams } from "../../../protocol/nodes.ts";
import {
  CommissionRequest,
  NodeStakeView,
  StakeList,
  StakeListQuery,
  StakeParams,
  StakeRequest,
  StakeView,
} from "../../../protocol/stakes.ts";
import {
  IDEMPOTENCY_HEADER,
  IdempotencyHeaders,
  REPLAYED_HEADER,
} from "../../../protocol/wallet.ts";
import { callerOf } from "../auth.ts";
import type { ApiDeps, ZodApp } from "../server.ts";

/**
 * Staked TDM (economics/stakes.ts). Stake, unstake and withdraw need an `Idempotency-Key` header,
 * as the wallet's money moves do: a repeat answers the first answer (`Idempotent-Replayed: true`),
 * the same key with another body is 409 IDEMPOTENCY_CONFLICT. A node's stake totals are public.
 */
export function stakeRoutes(app: ZodApp, { stakes, clock }: ApiDeps): void {
  const roles = ["consumer", "supplier"] as const;

  app.post(
    "/v1/stakes",
    {
      config: { roles: [...roles] },
      schema: {
        tags: ["stakes"],
        summary: "stake TDM from your wallet on a node (your own, or delegated to any node)",
        headers: IdempotencyHeaders,
        body: StakeRequest,
        response: { 201: StakeView },
      },
    },
    async (request, reply) => {
      const answer = await stakes.stake({
        requestedBy: callerOf(request).accountId,
        idempotencyKey: request.headers[IDEMPOTENCY_HEADER],
        nodeId: request.body.nodeId,
        amount: parseMoneyOrThrow(request.body.amount, { maxUnits: MAX_AMOUNT_UNITS }),
        nowMs: clock.now(),
      });
      if (answer.replayed) void reply.header(REPLAYED_HEADER, "true");
      return reply.status(201).send(answer.body);
    },
  );

  app.get(
    "/v1/stakes",
    {
      config: { roles: [...roles] },
      schema: {
        tags: ["stakes"],
        summary: "your stake positions, newest first",
        querystring: StakeListQuery,
        response: { 200: StakeList },
      },
    },
    (request) => stakes.list(callerOf(request).accountId, request.query),
  );

  const moves = {
    unstake: "start a position's cooldown; it stays slashable until it can be withdrawn",
    withdraw: "after the cooldown, pay a position back to your wallet",
  } as const;
  for (const [move, summary] of Object.entries(moves) as Array<[keyof typeof moves, string]>) {
    app.post(
      `/v1/stakes/:id/${move}`,
      {
        config: { roles: [...roles] },
        schema: {
          tags: ["stakes"],
          summary,
          headers: IdempotencyHeaders,
          params: StakeParams,
          response: { 200: StakeView },
        },
      },
      async (request, reply) => {
        const input = {
          requestedBy: callerOf(request).accountId,
          idempotencyKey: request.headers[IDEMPOTENCY_HEADER],
          stakeId: request.params.id,
          nowMs: clock.now(),
        };
        const answer = await (move === "unstake" ? stakes.unstake(input) : stakes.withdraw(input));
        if (answer.replayed) void reply.header(REPLAYED_HEADER, "true");
        return answer.body;
      },
    );
  }

  app.get(
    "/v1/nodes/:id/stake",
    {
      schema: {
        tags: ["nodes"],
        summary:
          "a node's stake: totals, the minimum that makes it eligible for rewards, commission",
        params: NodeIdParams,
        response: { 200: NodeStakeView },
      },
    },
    (request) => stakes.nodeStake(request.params.id),
  );

  app.put(
    "/v1/nodes/:id/commission",
    {
      config: { roles: ["supplier"] },
      schema: {
        tags: ["nodes"],
        summary: "set your node's commission on its rewards, percent",
        params: NodeIdParams,
        body: CommissionRequest,
        response: { 200: NodeStakeView },
      },
    },
    (request) =>
      stakes.setCommission({
        requestedBy: callerOf(request).accountId,
        nodeId: request.params.id,
        commissionBps: commissionBpsOf(request.body.commissionPercent),
        nowMs: clock.now(),
      }),
  );
}
