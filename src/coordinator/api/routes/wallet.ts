import { z } from "zod";
import { ErrorCode, TandemError } from "../../../core/errors.ts";
import { MAX_AMOUNT_UNITS, parseCurrencyOrThrow, parseMoneyOrThrow } from "../../../core/money.ts";
import { IdPrefix, idSchema } from "../../../protocol/ids.ts";
import {
  ClusterCostsView,
  DepositAddressQuery,
  DepositAddressView,
  DepositRequest,
  IDEMPOTENCY_HEADER,
  IdempotencyHeaders,
  LedgerAudit,
  MoneyMovement,
  PayoutCurrencyRequest,
  PayoutCurrencyView,
  REPLAYED_HEADER,
  WalletTransactionList,
  WalletTransactionsQuery,
  WalletView,
  WithdrawalRequest,
} from "../../../protocol/wallet.ts";
import { ledgerAudit } from "../../billing/audit.ts";
import { costsView } from "../../billing/wire.ts";
import { callerOf, requireRole } from "../auth.ts";
import type { ApiDeps, ZodApp } from "../server.ts";

const WalletQuery = z.strictObject({
  /** Admins may read any account's wallet. */
  accountId: idSchema(IdPrefix.account).optional(),
});
const ClusterParams = z.strictObject({ id: idSchema(IdPrefix.cluster) });

/**
 * Wallet, ledger audit and cluster costs. Money-moving POSTs need an `Idempotency-Key` header:
 * repeating a request with its key answers the first answer (header `Idempotent-Replayed: true`)
 * and moves nothing; the same key with another body is 409 IDEMPOTENCY_CONFLICT.
 */
export function walletRoutes(app: ZodApp, deps: ApiDeps): void {
  const { wallet, billing, clock, config, db, depositAddresses } = deps;
  app.get(
    "/v1/wallet/deposit-address",
    {
      config: { roles: ["consumer", "supplier"] },
      schema: {
        tags: ["wallet"],
        querystring: DepositAddressQuery,
        response: { 200: DepositAddressView },
      },
    },
    async (request) => {
      const { accountId } = callerOf(request);
      const currency = parseCurrencyOrThrow(request.query.currency);
      if (depositAddresses === undefined)
        throw new TandemError(
          ErrorCode.RAIL_DISABLED,
          "this coordinator takes no on-chain deposits (the Solana rail is off); an admin credits wallets",
        );
      const found = await depositAddresses.addressFor(accountId, currency, clock.now());
      return { ...found, network: "solana" as const };
    },
  );

  app.post(
    "/v1/wallet/deposits",
    {
      config: { roles: ["consumer", "supplier"] },
      schema: {
        tags: ["wallet"],
        headers: IdempotencyHeaders,
        body: DepositRequest,
        response: { 201: MoneyMovement },
      },
    },
    async (request, reply) => {
      const principal = callerOf(request);
      const accountId = request.body.accountId ?? principal.accountId;
      const admin = principal.roles.includes("admin");
      if (!admin) {
        if (!config.faucet)
          throw new TandemError(
            ErrorCode.FORBIDDEN,
            "deposits are credited by an admin; the faucet is off on this coordinator",
          );
        if (accountId !== principal.accountId)
          throw new TandemError(ErrorCode.FORBIDDEN, "the faucet credits only your own wallet");
      }
      const answer = await wallet.deposit({
        requestedBy: principal.accountId,
        idempotencyKey: request.headers[IDEMPOTENCY_HEADER],
        accountId,
        currency: parseCurrencyOrThrow(request.body.currency),
        amount: parseMoneyOrThrow(request.body.amount, { maxUnits: MAX_AMOUNT_UNITS }),
        nowMs: clock.now(),
      });
      if (answer.replayed) void reply.header(REPLAYED_HEADER, "true");
      return reply.status(201).send(answer.body);
    },
  );

  app.post(
    "/v1/wallet/withdrawals",
    {
      config: { roles: ["consumer", "supplier"] },
      schema: {
        tags: ["wallet"],
        headers: IdempotencyHeaders,
        body: WithdrawalRequest,
        response: { 201: MoneyMovement },
      },
    },
    async (request, reply) => {
      const principal = callerOf(request);
      const answer = await wallet.withdraw({
        requestedBy: principal.accountId,
        idempotencyKey: request.headers[IDEMPOTENCY_HEADER],
        accountId: principal.accountId,
        currency: parseCurrencyOrThrow(request.body.currency),
        amount: parseMoneyOrThrow(request.body.amount, { maxUnits: MAX_AMOUNT_UNITS }),
        from: request.body.from,
        destination: request.body.destination ?? null,
        nowMs: clock.now(),
      });
      if (answer.replayed) void reply.header(REPLAYED_HEADER, "true");
      return reply.status(201).send(answer.body);
    },
  );

  app.get(
    "/v1/wallet",
    {
      config: { roles: ["consumer", "supplier"] },
      schema: { tags: ["wallet"], querystring: WalletQuery, response: { 200: WalletView } },
    },
    (request) => {
      const principal = callerOf(request);
      const accountId = request.query.accountId ?? principal.accountId;
      if (accountId !== principal.accountId) requireRole(request, ["admin"]);
      return wallet.balances(accountId);
    },
  );

  app.get(
    "/v1/wallet/transactions",
    {
      config: { roles: ["consumer", "supplier"] },
      schema: {
        tags: ["wallet"],
        querystring: WalletTransactionsQuery,
        response: { 200: WalletTransactionList },
      },
    },
    (request) => {
      const { accountId } = callerOf(request);
      return wallet.history(accountId, request.query);
    },
  );

  app.get(
    "/v1/wallet/payout-currency",
    {
      config: { roles: ["supplier"] },
      schema: { tags: ["wallet"], response: { 200: PayoutCurrencyView } },
    },
    async (request) => {
      const { accountId } = callerOf(request);
      return { accountId, currency: await billing.payoutCurrency(accountId) };
    },
  );

  app.put(
    "/v1/wallet/payout-currency",
    {
      config: { roles: ["supplier"] },
      schema: {
        tags: ["wallet"],
        body: PayoutCurrencyRequest,
        response: { 200: PayoutCurrencyView },
      },
    },
    async (request) => {
      const { accountId } = callerOf(request);
      const currency =
        request.body.currency === null ? null : parseCurrencyOrThrow(request.body.currency);
      await billing.setPayoutCurrency(accountId, currency, clock.now());
      return { accountId, currency };
    },
  );

  app.get(
    "/v1/clusters/:id/costs",
    {
      config: { roles: ["consumer"] },
      schema: { tags: ["clusters"], params: ClusterParams, response: { 200: ClusterCostsView } },
    },
    async (request) => {
      const principal = callerOf(request);
      const costs = await billing.costs(request.params.id);
      // A cluster that is not the caller's reads as absent, so ids cannot be probed.
      if (
        costs === undefined ||
        (costs.consumerAccountId !== principal.accountId && !principal.roles.includes("admin"))
      )
        throw new TandemError(ErrorCode.NOT_FOUND, `no costs for cluster ${request.params.id}`);
      return costsView(costs);
    },
  );

  app.get(
    "/v1/admin/ledger-audit",
    { config: { roles: ["admin"] }, schema: { tags: ["admin"], response: { 200: LedgerAudit } } },
    () => ledgerAudit(db),
  );
}
