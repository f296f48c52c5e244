/**
 * Billing: the money side of a cluster's life — charge, extend, settle per minute, refund — for the
 * scheduler to call inside its own DB transaction (DESIGN.md §5.5–5.6, §6, §8.1).
 *
 * Every method takes the caller's Kysely transaction `tx` first, so a deploy's charge and its node
 * reservations commit or roll back together. Each call writes at most one ledger transaction per
 * business operation (a settlement pass writes one per lease), balanced and idempotent.
 *
 *   chargeDeploy(tx, { clusterId, consumerAccountId, quote, idempotencyKey, nowMs })
 *     → { ok: true, transactionId, replayed, currency, charged, rental, fees }
 *     | { ok: false, code: "INSUFFICIENT_FUNDS", details }          (nothing written)
 *     wallet:<consumer> −consumerTotal; escrow:<cluster> +rental; treasury +reservation +payment.
 *     One deploy charge per cluster: another key for an already charged cluster throws CONFLICT.
 *   chargeExtension(tx, same shape)                                   (quote from `quoteExtension`)
 *     Same postings; needs the cluster's deploy charge, same consumer and currency (else CONFLICT).
 *   settleLease(tx, { clusterId, leaseId, supplierAccountId, currency, pricePerHour,
 *                     servedMinutes, nowMs })
 *     → { ok: true, transactionId | null, replayed, released, total }
 *     | { ok: false, code: "INSUFFICIENT_FUNDS", details }          (escrow short; nothing written)
 *     Releases G(m) − released so far (core/fees.ts): escrow −gross; earnings:<supplier> +net;
 *     treasury +supplier fee; burn +burn. Idempotent per (lease, servedMinutes); fewer minutes
 *     than already settled release nothing.
 *   settleLeases(tx, inputs[]) → results[], same order: a whole pass in one DB transaction.
 *   refundRemainder(tx, { clusterId, consumerAccountId, currency, nowMs })
 *     → { ok: true, transactionId | null, refunded }
 *     Escrow's remainder → wallet:<consumer>. A second call finds nothing and writes nothing.
 *   slash(tx, { clusterId, leaseId, nodeId, supplierAccountId, consumerAccountId, currency,
 *               amount, reason, nowMs })
 *     → { transactionId | null, owed, taken, fromStake, fromEarnings, stakeTaken, shortfall }
 *     A node that failed while leased forfeits `amount` (DESIGN §6) to the consumer's wallet: from
 *     the stake on that node first, pro rata across its active and unbonding positions (TDM,
 *     converted at the oracle's rate), then from the supplier's unpaid earnings; what neither
 *     covers is `shortfall`. Once per lease, one transaction (slashes.ts).
 *   costs(clusterId) → ClusterCosts | undefined (no money ever moved for it)
 *   quote(input) / quoteExtension(input): core's quote with the configured fee schedule.
 *
 * Order at termination: settle every lease at its final served minutes, then refundRemainder.
 * `INSUFFICIENT_FUNDS` and the like are answers; a broken invariant (an unbalanced write, an
 * idempotency key reused for another request, a refund to someone else) throws `TandemError`.
 */
import { sql, type Kysely } from "kysely";
import { ErrorCode, TandemError } from "../../core/errors.ts";
import {
  NO_SETTLEMENT,
  assertQuoteConsistent,
  quote as coreQuote,
  quoteExtension as coreQuoteExtension,
  settlementDelta,
  settlementTarget,
  type ExtensionInput,
  type FeeSchedule,
  type Quote,
  type QuoteInput,
  type SettlementFigures,
} from "../../core/fees.ts";
import {
  ZERO,
  add,
  formatMoney,
  neg,
  sub,
  units,
  type Currency,
  type Money,
} from "../../core/money.ts";
import {
  DEFAULT_ORACLE_RATES,
  formatRate,
  type ExchangeRate,
  type OracleRates,
} from "../../core/exchange.ts";
import { costsFromRows, type ClusterCosts } from "./costs.ts";
import {
  Leg,
  TREASURY,
  TransactionKind,
  earningsAccount,
  escrowAccount,
  walletAccount,
  type LedgerAccount,
} from "./ledger-accounts.ts";
import { latestSettlements } from "./latest-settlements.ts";
import type { Ledger } from "./ledger.ts";
import {
  encodePayout,
  payoutRate,
  readPayoutCurrencies,
  settlementPostings,
  writePayoutCurrency,
} from "./payouts.ts";
import { inTransaction, requestHash, type RecordInput, type Tx } from "./ledger.ts";
import { slash, type SlashInput, type SlashResult } from "./slashes.ts";
import { wideSum } from "./wide-sum.ts";
import type { Database } from "../store/schema.ts";

export type { SlashInput, SlashResult } from "./slashes.ts";

export interface ChargeInput {
  readonly clusterId: string;
  readonly consumerAccountId: string;
  readonly quote: Quote;
  /** The caller's key for this charge (the deploy's or extension's own idempotency key). */
  readonly idempotencyKey: string;
  readonly nowMs: number;
}

export interface InsufficientFunds {
  readonly ok: false;
  readonly code: "INSUFFICIENT_FUNDS";
  readonly details: {
    readonly account: string;
    readonly currency: Currency;
    readonly required: string;
    readonly available: string;
  };
}

export type ChargeResult =
  | {
      readonly ok: true;
      /** Null only when the quote's total is zero (nothing to move). */
      readonly transactionId: string | null;
      readonly replayed: boolean;
      readonly currency: Currency;
      readonly charged: Money;
      readonly rental: Money;
      readonly fees: { readonly reservation: Money; readonly payment: Money };
    }
  | InsufficientFunds;

export interface SettleInput {
  readonly clusterId: string;
  readonly leaseId: string;
  readonly supplierAccountId: string;
  readonly currency: Currency;
  readonly pricePerHour: Money;
  /** Minutes served in all since the lease began (cumulative, not since the last call). */
  readonly servedMinutes: number;
  readonly nowMs: number;
}

export type SettleResult =
  | {
      readonly ok: true;
      /** Null when there was nothing new to release. */
      readonly transactionId: string | null;
      readonly replayed: boolean;
      /** Released by this call. */
      readonly released: SettlementFigures;
      /** Released in all for the lease, this call included. */
      readonly total: SettlementFigures;
      /** When the supplier is paid in another currency: what `released.net` became, and at what rate. */
      readonly payout: SettledPayout | null;
    }
  | InsufficientFunds;

export interface SettledPayout {
  readonly currency: Currency;
  readonly amount: Money;
  /** `currency` units per unit of the lease's currency (`formatRate`). */
  readonly rate: string;
}

export interface RefundInput {
  readonly clusterId: string;
  readonly consumerAccountId: string;
  readonly currency: Currency;
  readonly nowMs: number;
}

export interface RefundResult {
  readonly ok: true;
  readonly transactionId: string | null;
  readonly refunded: Money;
}

export class Billing {
  private readonly ledger: Ledger;

  constructor(
    private readonly db: Kysely<Database>,
    ledger: Ledger,
    readonly schedule: FeeSchedule,
    /** The price oracle: smallest units of each currency per US dollar. */
    readonly rates: OracleRates = DEFAULT_ORACLE_RATES,
  ) {
    this.ledger = ledger;
  }

  /** The currency an account's earnings are paid in; null: the currency each consumer paid. */
  async payoutCurrency(accountId: string): Promise<Currency | null> {
    return (await readPayoutCurrencies(this.db, [accountId])).get(accountId) ?? null;
  }

  /** Chooses (null: clears) an account's payout currency; `VALIDATION_FAILED` without a rate. */
  setPayoutCurrency(accountId: string, currency: Currency | null, nowMs: number): Promise<void> {
    return writePayoutCurrency(this.db, this.rates, accountId, currency, nowMs);
  }

  /** A quote with this coordinator's fee schedule. */
  quote(input: Omit<QuoteInput, "schedule">): Quote {
    return coreQuote({ ...input, schedule: this.schedule });
  }

  quoteExtension(input: Omit<ExtensionInput, "schedule">): Quote {
    return coreQuoteExtension({ ...input, schedule: this.schedule });
  }

  /** Runs `fn` in a new DB transaction, retried on PostgreSQL deadlocks and serialization failures. */
  transaction<T>(fn: (tx: Tx) => Promise<T>): Promise<T> {
    return inTransaction(this.db, fn);
  }

  chargeDeploy(tx: Tx, input: ChargeInput): Promise<ChargeResult> {
    return this.charge(tx, input, TransactionKind.CHARGE_DEPLOY);
  }

  chargeExtension(tx: Tx, input: ChargeInput): Promise<ChargeResult> {
    return this.charge(tx, input, TransactionKind.CHARGE_EXTENSION);
  }

  private async charge(
    tx: Tx,
    input: ChargeInput,
    kind: typeof TransactionKind.CHARGE_DEPLOY | typeof TransactionKind.CHARGE_EXTENSION,
  ): Promise<ChargeResult> {
    const { quote: q, clusterId, consumerAccountId } = input;
    assertQuoteConsistent(q);
    const key = `${kind}:${input.idempotencyKey}`;
    const hash = requestHash(kind, {
      clusterId,
      consumerAccountId,
      currency: q.currency,
      rental: q.rental,
      fees: q.fees,
      consumerTotal: q.consumerTotal,
    });
    await this.ledger.lockKey(tx, key);
    const existing = await this.ledger.replay(tx, key, hash);
    if (existing !== undefined) return { ...decodeCharge(existing.response), replayed: true };

    await this.checkChargeOrder(tx, kind, input);
    const wallet = walletAccount(consumerAccountId);
    const escrow = escrowAccount(clusterId);
    const balances = await this.ledger.lockBalances(tx, q.currency, [wallet, escrow]);
    const available = balances.get(wallet) ?? ZERO;
    if (available < q.consumerTotal) {
      return insufficient(wallet, q.currency, q.consumerTotal, available);
    }
    const answer = (transactionId: string | null) => ({
      ok: true as const,
      transactionId,
      replayed: false,
      currency: q.currency,
      charged: q.consumerTotal,
      rental: q.rental,
      fees: { reservation: q.fees.reservationConsumer, payment: q.fees.payment },
    });
    if (q.consumerTotal === 0n) return answer(null);
    const { id } = await this.ledger.record(tx, {
      idempotencyKey: key,
      kind,
      requestHash: hash,
      accountId: consumerAccountId,
      clusterId,
      metadata: {
        currency: q.currency,
        durationMinutes: q.durationMinutes,
        schedule: q.schedule,
        lines: q.lines.map((l) => ({
          nodeId: l.nodeId,
          pricePerHour: formatMoney(l.pricePerHour),
          minutes: l.minutes,
          rental: formatMoney(l.rental),
        })),
      },
      response: (transactionId) => encodeCharge(answer(transactionId)),
      nowMs: input.nowMs,
      postings: [
        { account: wallet, currency: q.currency, amount: neg(q.consumerTotal), leg: Leg.CHARGE },
        { account: escrow, currency: q.currency, amount: q.rental, leg: Leg.RENTAL },
        {
          account: TREASURY,
          currency: q.currency,
          amount: q.fees.reservationConsumer,
          leg: Leg.RESERVATION_FEE,
        },
        { account: TREASURY, currency: q.currency, amount: q.fees.payment, leg: Leg.PAYMENT_FEE },
      ],
    });
    return answer(id);
  }

  /** A deploy charge is the cluster's first and only one; extensions follow it, same payer and currency. */
  private async checkChargeOrder(tx: Tx, kind: string, input: ChargeInput): Promise<void> {
    const deploy = await this.deployCharge(tx, input.clusterId);
    if (kind === TransactionKind.CHARGE_DEPLOY) {
      if (deploy !== undefined)
        throw new TandemError(ErrorCode.CONFLICT, `cluster ${input.clusterId} is already charged`, {
          details: { transactionId: deploy.id },
        });
      return;
    }
    if (deploy === undefined)
      throw new TandemError(ErrorCode.CONFLICT, `cluster ${input.clusterId} has no deploy charge`);
    if (deploy.accountId !== input.consumerAccountId || deploy.currency !== input.quote.currency)
      throw new TandemError(
        ErrorCode.CONFLICT,
        `an extension must be paid by the deploy's payer in its currency (${deploy.currency})`,
      );
  }

  private async deployCharge(tx: Kysely<Database>, clusterId: string) {
    const row = await tx
      .selectFrom("ledger_transactions")
      .select(["id", "account_id", "metadata"])
      .where("cluster_id", "=", clusterId)
      .where("kind", "=", TransactionKind.CHARGE_DEPLOY)
      .executeTakeFirst();
    if (row === undefined) return undefined;
    const { currency } = JSON.parse(row.metadata) as { currency: Currency };
    return { id: row.id, accountId: row.account_id, currency };
  }

  async settleLease(tx: Tx, input: SettleInput): Promise<SettleResult> {
    const [result] = await this.settleLeases(tx, [input]);
    return result!;
  }

  /**
   * Settles many leases in one DB transaction with a fixed number of statements: lock the escrows
   * (one per 500), read stored answers and what each lease was already paid (one each), write the
   * new postings and transactions in bulk (two per 1,000 leases).
   */
  async settleLeases(tx: Tx, inputs: readonly SettleInput[]): Promise<SettleResult[]> {
    const seen = new Set<string>();
    for (const input of inputs) {
      if (seen.has(input.leaseId))
        throw new TandemError(ErrorCode.INTERNAL, `lease ${input.leaseId} twice in one settlement`);
      seen.add(input.leaseId);
      if (
        !Number.isSafeInteger(input.servedMinutes) ||
        input.servedMinutes < 0 ||
        input.pricePerHour < 0n
      )
        throw new TandemError(ErrorCode.INTERNAL, `bad settlement input for ${input.leaseId}`);
    }
    const keyOf = (i: SettleInput) => `settlement:${i.leaseId}:${i.servedMinutes}`;
    const hashOf = (i: SettleInput) =>
      requestHash(TransactionKind.SETTLEMENT, {
        clusterId: i.clusterId,
        leaseId: i.leaseId,
        supplierAccountId: i.supplierAccountId,
        currency: i.currency,
        pricePerHour: i.pricePerHour,
        servedMinutes: i.servedMinutes,
      });

    const chosen = await readPayoutCurrencies(
      tx,
      inputs.map((i) => i.supplierAccountId),
    );
    const rateOf = (i: SettleInput) =>
      payoutRate(this.rates, i.currency, chosen.get(i.supplierAccountId));
    const escrow = new Map<string, Money>();
    const touched = new Map<Currency, LedgerAccount[]>();
    const touch = (currency: Currency, account: LedgerAccount) => {
      const accounts = touched.get(currency);
      if (accounts === undefined) touched.set(currency, [account]);
      else accounts.push(account);
    };
    for (const i of inputs) {
      touch(i.currency, escrowAccount(i.clusterId));
      touch(rateOf(i)?.to ?? i.currency, earningsAccount(i.supplierAccountId));
    }
    for (const [currency, accounts] of [...touched].sort(([a], [b]) => (a < b ? -1 : 1))) {
      for (const chunk of sortedChunks(accounts))
        for (const [account, balance] of await this.ledger.lockBalances(tx, currency, chunk))
          escrow.set(`${currency}|${account}`, balance);
    }
    const stored = await this.ledger.findByKeys(tx, inputs.map(keyOf));
    const paid = await this.releasedByLease(
      tx,
      inputs.filter((i) => !stored.has(keyOf(i))),
    );

    const results: Array<SettleResult | undefined> = [];
    const toRecord: Array<{
      index: number;
      record: RecordInput;
      settled: (transactionId: string) => SettleResult;
    }> = [];
    for (const [index, input] of inputs.entries()) {
      const key = keyOf(input);
      const hash = hashOf(input);
      const existing = stored.get(key);
      if (existing !== undefined) {
        if (existing.requestHash !== hash)
          throw new TandemError(
            ErrorCode.IDEMPOTENCY_CONFLICT,
            `settlement ${key} differs from the recorded one`,
          );
        results[index] = { ...decodeSettle(existing.response), replayed: true };
        continue;
      }
      const prior = paid.get(input.leaseId);
      if (
        prior !== undefined &&
        (prior.clusterId !== input.clusterId || prior.supplier !== input.supplierAccountId)
      )
        throw new TandemError(
          ErrorCode.CONFLICT,
          `lease ${input.leaseId} was settled for another cluster or supplier`,
        );
      const released = prior?.figures ?? NO_SETTLEMENT;
      const delta = settlementDelta(
        settlementTarget(input.pricePerHour, input.servedMinutes, this.schedule),
        released,
      );
      const total = sumFigures(released, delta);
      if (delta.gross === 0n) {
        results[index] = {
          ok: true,
          transactionId: null,
          replayed: false,
          released: delta,
          total,
          payout: null,
        };
        continue;
      }
      const escrowKey = `${input.currency}|${escrowAccount(input.clusterId)}`;
      const available = escrow.get(escrowKey) ?? ZERO;
      if (available < delta.gross) {
        results[index] = insufficient(
          escrowAccount(input.clusterId),
          input.currency,
          delta.gross,
          available,
        );
        continue;
      }
      escrow.set(escrowKey, sub(available, delta.gross));
      const { record, payout } = settlementRecord(input, key, hash, delta, total, rateOf(input));
      toRecord.push({
        index,
        record,
        settled: (transactionId) => ({
          ok: true,
          transactionId,
          replayed: false,
          released: delta,
          total,
          payout,
        }),
      });
    }
    const written = await this.ledger.recordMany(
      tx,
      toRecord.map((r) => r.record),
    );
    for (const [i, { index, settled }] of toRecord.entries())
      results[index] = settled(written[i]!.id);
    return results.map((r) => r!);
  }

  /**
   * What each lease was already released: the cumulative `total` recorded by its latest settlement
   * (one index seek per lease: latest-settlements.ts). Each `total` was computed with the postings
   * it was written with, and `ledger-audit`'s Σ checks still read the postings.
   */
  private async releasedByLease(tx: Tx, inputs: readonly SettleInput[]) {
    const byLease = new Map<
      string,
      { clusterId: string | null; supplier: string | null; figures: SettlementFigures }
    >();
    const rows = await latestSettlements(
      tx,
      this.ledger.dialect,
      inputs.map((i) => i.leaseId),
    );
    for (const row of rows) {
      byLease.set(row.lease_id, {
        clusterId: row.cluster_id,
        supplier: row.account_id,
        figures: decodeSettle(JSON.parse(row.response)).total,
      });
    }
    return byLease;
  }

  async refundRemainder(tx: Tx, input: RefundInput): Promise<RefundResult> {
    const { clusterId, consumerAccountId, currency } = input;
    const escrow = escrowAccount(clusterId);
    const wallet = walletAccount(consumerAccountId);
    await this.ledger.lockKey(tx, `refund:${clusterId}`);
    const deploy = await this.deployCharge(tx, clusterId);
    if (deploy === undefined) return { ok: true, transactionId: null, refunded: ZERO };
    if (deploy.accountId !== consumerAccountId || deploy.currency !== currency)
      throw new TandemError(
        ErrorCode.CONFLICT,
        `cluster ${clusterId} was paid by another account or in another currency`,
      );
    const balances = await this.ledger.lockBalances(tx, currency, [escrow, wallet]);
    const remainder = balances.get(escrow) ?? ZERO;
    if (remainder === 0n) return { ok: true, transactionId: null, refunded: ZERO };
    const previous = await tx
      .selectFrom("ledger_transactions")
      .select(sql<string>`CAST(COUNT(*) AS TEXT)`.as("n"))
      .where("cluster_id", "=", clusterId)
      .where("kind", "=", TransactionKind.REFUND)
      .executeTakeFirstOrThrow();
    const ordinal = Number(previous.n) + 1;
    const { id } = await this.ledger.record(tx, {
      idempotencyKey: `refund:${clusterId}:${ordinal}`,
      kind: TransactionKind.REFUND,
      requestHash: requestHash(TransactionKind.REFUND, {
        clusterId,
        consumerAccountId,
        currency,
        remainder,
        ordinal,
      }),
      accountId: consumerAccountId,
      clusterId,
      metadata: { currency },
      response: (transactionId) => ({ transactionId, refunded: formatMoney(remainder) }),
      nowMs: input.nowMs,
      postings: [
        { account: escrow, currency, amount: neg(remainder), leg: Leg.REFUND },
        { account: wallet, currency, amount: remainder, leg: Leg.REFUND },
      ],
    });
    return { ok: true, transactionId: id, refunded: remainder };
  }

  /** A failed node's forfeit to the harmed consumer: from its stake, then its earnings (slashes.ts). */
  slash(tx: Tx, input: SlashInput): Promise<SlashResult> {
    return slash(tx, this.ledger, this.rates, input);
  }

  /** What a cluster's escrow holds now (locked for the rest of the caller's transaction). */
  async escrowBalance(tx: Tx, clusterId: string, currency: Currency): Promise<Money> {
    const escrow = escrowAccount(clusterId);
    return (await this.ledger.lockBalances(tx, currency, [escrow])).get(escrow) ?? ZERO;
  }

  /** Every amount that moved for a cluster, from its postings; undefined when none did. */
  async costs(
    clusterId: string,
    tx: Kysely<Database> = this.db,
  ): Promise<ClusterCosts | undefined> {
    const amountSum = wideSum(sql`p.amount`);
    const rows = await tx
      .selectFrom("ledger_transactions as t")
      .innerJoin("ledger_postings as p", "p.transaction_id", "t.id")
      .select([
        "p.account",
        "p.currency",
        "p.leg",
        "t.kind",
        "t.exchange_rate",
        amountSum.high.as("total_high"),
        amountSum.low.as("total_low"),
      ])
      .where("t.cluster_id", "=", clusterId)
      .groupBy(["p.account", "p.currency", "p.leg", "t.kind", "t.exchange_rate"])
      .execute();
    if (rows.length === 0) return undefined;
    const deploy = await this.deployCharge(tx, clusterId);
    return costsFromRows(clusterId, deploy?.accountId ?? null, deploy?.currency ?? null, rows);
  }
}

function insufficient(
  account: LedgerAccount,
  currency: Currency,
  required: Money,
  available: Money,
): InsufficientFunds {
  return {
    ok: false,
    code: "INSUFFICIENT_FUNDS",
    details: {
      account,
      currency,
      required: formatMoney(required),
      available: formatMoney(available),
    },
  };
}

function settlementRecord(
  input: SettleInput,
  key: string,
  hash: string,
  delta: SettlementFigures,
  total: SettlementFigures,
  rate: ExchangeRate | undefined,
): { record: RecordInput; payout: SettledPayout | null } {
  const { currency } = input;
  const { postings, payout } = settlementPostings(
    input.clusterId,
    input.supplierAccountId,
    currency,
    delta,
    rate,
  );
  const encoded = payout === undefined ? null : encodePayout(payout);
  const record: RecordInput = {
    idempotencyKey: key,
    kind: TransactionKind.SETTLEMENT,
    requestHash: hash,
    accountId: input.supplierAccountId,
    clusterId: input.clusterId,
    leaseId: input.leaseId,
    servedMinutes: input.servedMinutes,
    exchangeRate: rate === undefined ? undefined : formatRate(rate),
    metadata: {
      currency,
      pricePerHour: formatMoney(input.pricePerHour),
      ...(encoded === null ? {} : { exchange: encoded }),
    },
    response: (transactionId) => ({
      transactionId,
      released: encodeFigures(delta),
      total: encodeFigures(total),
      payout: encoded,
    }),
    nowMs: input.nowMs,
    postings,
  };
  return {
    record,
    payout:
      encoded === null
        ? null
        : { currency: encoded.currency, amount: payout!.amount, rate: encoded.rate },
  };
}

function sumFigures(a: SettlementFigures, b: SettlementFigures): SettlementFigures {
  return {
    gross: add(a.gross, b.gross),
    supplierFee: add(a.supplierFee, b.supplierFee),
    burn: add(a.burn, b.burn),
    net: add(a.net, b.net),
  };
}

type Encoded<T> = { [K in keyof T]: string };

function encodeFigures(f: SettlementFigures): Encoded<SettlementFigures> {
  return {
    gross: f.gross.toString(),
    supplierFee: f.supplierFee.toString(),
    burn: f.burn.toString(),
    net: f.net.toString(),
  };
}

function decodeFigures(f: Encoded<SettlementFigures>): SettlementFigures {
  return {
    gross: units(f.gross),
    supplierFee: units(f.supplierFee),
    burn: units(f.burn),
    net: units(f.net),
  };
}

function decodeSettle(stored: unknown): Extract<SettleResult, { ok: true }> {
  const s = stored as {
    transactionId: string;
    released: Encoded<SettlementFigures>;
    total: Encoded<SettlementFigures>;
    payout?: ReturnType<typeof encodePayout> | null;
  };
  return {
    ok: true,
    transactionId: s.transactionId,
    replayed: false,
    released: decodeFigures(s.released),
    total: decodeFigures(s.total),
    payout:
      s.payout === undefined || s.payout === null
        ? null
        : { currency: s.payout.currency, amount: units(s.payout.amount), rate: s.payout.rate },
  };
}

function encodeCharge(result: Extract<ChargeResult, { ok: true }>) {
  return {
    transactionId: result.transactionId,
    currency: result.currency,
    charged: result.charged.toString(),
    rental: result.rental.toString(),
    reservation: result.fees.reservation.toString(),
    payment: result.fees.payment.toString(),
  };
}

function decodeCharge(stored: unknown): Extract<ChargeResult, { ok: true }> {
  const s = stored as ReturnType<typeof encodeCharge>;
  return {
    ok: true,
    transactionId: s.transactionId,
    replayed: false,
    currency: s.currency,
    charged: units(s.charged),
    rental: units(s.rental),
    fees: { reservation: units(s.reservation), payment: units(s.payment) },
  };
}

function sortedChunks<T extends string>(values: readonly T[], size = 500): T[][] {
  const sorted = [...new Set(values)].sort();
  const out: T[][] = [];
  for (let i = 0; i < sorted.length; i += size) out.push(sorted.slice(i, i + size));
  return out;
}
