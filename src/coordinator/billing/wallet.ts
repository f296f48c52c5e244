/**
 * Wallets: deposits and withdrawals across a `PaymentRail`, balances and history. Each money
 * movement is one DB transaction with an idempotency key scoped to the caller (the same key from
 * two callers are two keys), retried on PostgreSQL lock conflicts (see ledger.ts).
 *
 * Withdrawals pay out from supplier `earnings` (the default) or from the spendable `wallet` (unused
 * prepaid funds); moving earnings into the wallet to spend them is a later feature.
 */
import { sql, type Kysely } from "kysely";
import { ErrorCode, TandemError } from "../../core/errors.ts";
import {
  AmountProblem,
  CURRENCIES,
  MAX_UNITS,
  ZERO,
  formatMoney,
  neg,
  units,
  type Currency,
  type Money,
} from "../../core/money.ts";
import type {
  MoneyMovement,
  WalletTransaction,
  WalletTransactionList,
  WalletView,
} from "../../protocol/wallet.ts";
import {
  Leg,
  TransactionKind,
  earningsAccount,
  externalAccount,
  indexedByAccount,
  stakeAccount,
  walletAccount,
  type LedgerAccount,
} from "./ledger-accounts.ts";
import type { Ledger } from "./ledger.ts";
import { inTransaction, requestHash, type Tx } from "./ledger.ts";
import type { PaymentRail } from "./payment-rail.ts";
import type { Database } from "../store/schema.ts";

export interface MovementRequest {
  /** Who asks: scopes the idempotency key. */
  readonly requestedBy: string;
  readonly idempotencyKey: string;
  readonly accountId: string;
  readonly currency: Currency;
  readonly amount: Money;
  readonly nowMs: number;
}

export interface WithdrawalInput extends MovementRequest {
  readonly from: "earnings" | "wallet";
  readonly destination: string | null;
}

export interface Answer<T> {
  readonly body: T;
  /** True when this is the stored answer of an earlier request with the same key. */
  readonly replayed: boolean;
}

export class WalletService {
  constructor(
    private readonly db: Kysely<Database>,
    private readonly ledger: Ledger,
    private readonly rail: PaymentRail,
  ) {}

  deposit(request: MovementRequest): Promise<Answer<MoneyMovement>> {
    const key = `api:${request.requestedBy}:${request.idempotencyKey}`;
    const hash = requestHash(TransactionKind.DEPOSIT, {
      accountId: request.accountId,
      currency: request.currency,
      amount: request.amount,
    });
    return inTransaction(this.db, async (tx) => {
      await this.ledger.lockKey(tx, key);
      const existing = await this.ledger.replay(tx, key, hash);
      if (existing !== undefined)
        return { body: existing.response as MoneyMovement, replayed: true };
      await this.requireAccount(tx, request.accountId);
      const wallet = walletAccount(request.accountId);
      const held =
        (await this.ledger.lockBalances(tx, request.currency, [wallet])).get(wallet) ?? ZERO;
      // A stored balance is a signed 64-bit integer: a credit past it is refused, not an overflow.
      if (held + request.amount > MAX_UNITS) {
        throw new TandemError(
          ErrorCode.INVALID_AMOUNT,
          `the wallet would hold more than ${formatMoney(units(MAX_UNITS))} ${request.currency}`,
          {
            details: {
              problem: AmountProblem.TOO_LARGE,
              field: "amount",
              held: formatMoney(held),
              max: formatMoney(units(MAX_UNITS)),
            },
          },
        );
      }
      const receipt = await this.rail.acceptDeposit({ ...request, idempotencyKey: key });
      const { response } = await this.ledger.record(tx, {
        idempotencyKey: key,
        kind: TransactionKind.DEPOSIT,
        requestHash: hash,
        accountId: request.accountId,
        metadata: {
          rail: this.rail.name,
          railReference: receipt.reference,
          requestedBy: request.requestedBy,
        },
        response: (transactionId): MoneyMovement => ({
          transactionId,
          kind: "deposit",
          accountId: request.accountId,
          currency: request.currency,
          amount: formatMoney(request.amount),
          from: "external",
          to: "wallet",
          rail: this.rail.name,
          railReference: receipt.reference,
          createdAt: new Date(request.nowMs).toISOString(),
        }),
        nowMs: request.nowMs,
        postings: [
          {
            account: externalAccount(this.rail.name),
            currency: request.currency,
            amount: neg(request.amount),
            leg: Leg.DEPOSIT,
          },
          { account: wallet, currency: request.currency, amount: request.amount, leg: Leg.DEPOSIT },
        ],
      });
      return { body: response as MoneyMovement, replayed: false };
    });
  }

  /** Throws `INSUFFICIENT_FUNDS` (nothing written) when the source balance is short. */
  withdraw(request: WithdrawalInput): Promise<Answer<MoneyMovement>> {
    const key = `api:${request.requestedBy}:${request.idempotencyKey}`;
    const hash = requestHash(TransactionKind.WITHDRAWAL, {
      accountId: request.accountId,
      currency: request.currency,
      amount: request.amount,
      from: request.from,
      destination: request.destination,
    });
    return inTransaction(this.db, async (tx) => {
      await this.ledger.lockKey(tx, key);
      const existing = await this.ledger.replay(tx, key, hash);
      if (existing !== undefined)
        return { body: existing.response as MoneyMovement, replayed: true };
      const source =
        request.from === "earnings"
          ? earningsAccount(request.accountId)
          : walletAccount(request.accountId);
      const balances = await this.ledger.lockBalances(tx, request.currency, [source]);
      const available = balances.get(source) ?? ZERO;
      if (available < request.amount) {
        throw new TandemError(
          ErrorCode.INSUFFICIENT_FUNDS,
          `your ${request.from} holds ${formatMoney(available)} ${request.currency}; ` +
            `${formatMoney(request.amount)} requested`,
          {
            details: {
              balance: request.from,
              currency: request.currency,
              required: formatMoney(request.amount),
              available: formatMoney(available),
            },
          },
        );
      }
      const receipt = await this.rail.sendWithdrawal({
        ...request,
        idempotencyKey: key,
        destination: request.destination,
      });
      const { response } = await this.ledger.record(tx, {
        idempotencyKey: key,
        kind: TransactionKind.WITHDRAWAL,
        requestHash: hash,
        accountId: request.accountId,
        metadata: {
          rail: this.rail.name,
          railReference: receipt.reference,
          destination: request.destination,
        },
        response: (transactionId): MoneyMovement => ({
          transactionId,
          kind: "withdrawal",
          accountId: request.accountId,
          currency: request.currency,
          amount: formatMoney(request.amount),
          from: request.from,
          to: "external",
          rail: this.rail.name,
          railReference: receipt.reference,
          createdAt: new Date(request.nowMs).toISOString(),
        }),
        nowMs: request.nowMs,
        postings: [
          {
            account: source,
            currency: request.currency,
            amount: neg(request.amount),
            leg: Leg.WITHDRAWAL,
          },
          {
            account: externalAccount(this.rail.name),
            currency: request.currency,
            amount: request.amount,
            leg: Leg.WITHDRAWAL,
          },
        ],
      });
      return { body: response as MoneyMovement, replayed: false };
    });
  }

  /** Wallet and earnings per currency, every currency listed (zero when empty). */
  async balances(accountId: string): Promise<WalletView> {
    const wallet = walletAccount(accountId);
    const earnings = earningsAccount(accountId);
    const rows = await this.db
      .selectFrom("ledger_balances")
      .select(["account", "currency", sql<string>`CAST(balance AS TEXT)`.as("balance")])
      .where("account", "in", [wallet, earnings])
      .execute();
    const get = (account: string, currency: Currency) =>
      units(rows.find((r) => r.account === account && r.currency === currency)?.balance ?? 0);
    return {
      accountId,
      balances: CURRENCIES.map((currency) => ({
        currency,
        wallet: formatMoney(get(wallet, currency)),
        earnings: formatMoney(get(earnings, currency)),
      })),
    };
  }

  /**
   * The ids of one page of `history` (one row more than a page), newest first: from the postings'
   * account index, whose partial predicate the query repeats (SQLite uses a partial index only
   * then). Public for EXPLAIN in tests.
   */
  historyIdsQuery(
    accountId: string,
    query: { limit: number; cursor?: string | undefined; currency?: Currency | undefined },
    /** The account's stake positions (their escrows' postings are its history too). */
    stakeIds: readonly string[] = [],
  ) {
    let ids = this.db
      .selectFrom("ledger_postings")
      .select("transaction_id")
      .distinct()
      .where("account", "in", historyAccounts(accountId, stakeIds))
      .where(sql.raw<boolean>(indexedByAccount()))
      .orderBy("transaction_id", "desc")
      .limit(query.limit + 1);
    if (query.currency !== undefined) ids = ids.where("currency", "=", query.currency);
    if (query.cursor !== undefined) ids = ids.where("transaction_id", "<", query.cursor);
    return ids;
  }

  /** This account's transactions, newest first, paged by transaction id. */
  async history(
    accountId: string,
    query: { limit: number; cursor?: string | undefined; currency?: Currency | undefined },
  ): Promise<WalletTransactionList> {
    // A staker's positions are its history too: the stake, its slashes, its withdrawal.
    const stakeIds = (
      await this.db.selectFrom("stakes").select("id").where("account_id", "=", accountId).execute()
    ).map((r) => r.id);
    const accounts = historyAccounts(accountId, stakeIds);
    const page = (await this.historyIdsQuery(accountId, query, stakeIds).execute()).map(
      (r) => r.transaction_id,
    );
    const more = page.length > query.limit;
    const wanted = page.slice(0, query.limit);
    if (wanted.length === 0) return { items: [], nextCursor: null };

    const [headers, postings] = await Promise.all([
      this.db
        .selectFrom("ledger_transactions")
        .select(["id", "kind", "created_at", "cluster_id", "lease_id", "metadata"])
        .where("id", "in", wanted)
        .execute(),
      this.db
        .selectFrom("ledger_postings")
        .select([
          "id",
          "transaction_id",
          "account",
          "currency",
          "leg",
          sql<string>`CAST(amount AS TEXT)`.as("amount"),
        ])
        .where("transaction_id", "in", wanted)
        .where("account", "in", accounts)
        .orderBy("id")
        .execute(),
    ]);
    const items = wanted.flatMap((id): WalletTransaction[] => {
      const header = headers.find((h) => h.id === id);
      if (header === undefined) return [];
      return [
        {
          id,
          kind: header.kind,
          createdAt: new Date(Number(header.created_at)).toISOString(),
          clusterId: header.cluster_id,
          leaseId: header.lease_id,
          exchange: exchangeOf(header.metadata),
          railReference: railReferenceOf(header.metadata),
          entries: postings
            .filter((p) => p.transaction_id === id)
            .map((p) => ({
              ...balanceOf(p.account),
              currency: p.currency as Currency,
              leg: p.leg,
              amount: formatMoney(units(p.amount)),
            })),
        },
      ];
    });
    return { items, nextCursor: more ? (wanted.at(-1) ?? null) : null };
  }

  private async requireAccount(tx: Tx, accountId: string): Promise<void> {
    const row = await tx
      .selectFrom("accounts")
      .select("id")
      .where("id", "=", accountId)
      .executeTakeFirst();
    if (row === undefined) throw new TandemError(ErrorCode.NOT_FOUND, `no account ${accountId}`);
  }
}

/** The ledger accounts whose postings make an account's history. */
function historyAccounts(accountId: string, stakeIds: readonly string[]): LedgerAccount[] {
  return [walletAccount(accountId), earningsAccount(accountId), ...stakeIds.map(stakeAccount)];
}

/** Which of the account's balances a posting moved: its wallet, its earnings, or a stake position. */
function balanceOf(
  account: string,
): Pick<WalletTransaction["entries"][number], "balance" | "stakeId"> {
  if (account.startsWith("wallet:")) return { balance: "wallet" };
  if (account.startsWith("earnings:")) return { balance: "earnings" };
  return { balance: "stake", stakeId: account.slice(stakeAccount("").length) };
}

/** The rail's reference a deposit or withdrawal recorded (wallet.ts, solana/deposit-watcher.ts). */
function railReferenceOf(metadata: string): string | null {
  const reference = (JSON.parse(metadata) as { railReference?: unknown }).railReference;
  return typeof reference === "string" ? reference : null;
}

/** The conversion a transaction recorded (settlement or slash metadata), if any. */
function exchangeOf(metadata: string): WalletTransaction["exchange"] {
  const e = (JSON.parse(metadata) as { exchange?: NonNullable<WalletTransaction["exchange"]> })
    .exchange;
  return e === undefined
    ? null
    : { from: e.from, to: e.to, rate: e.rate, fromPerUsd: e.fromPerUsd, toPerUsd: e.toPerUsd };
}
