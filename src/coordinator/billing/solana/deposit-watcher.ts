/**
 * The deposit watcher: on the leader (a `LeaderLoop`), each beat lists every token account each
 * deposit owner holds at the configured commitment, reads the signatures newer than the account's
 * cursor, and records each SPL transfer into it once per (signature, instruction): credited to the
 * account's wallet through the ledger, or refused with a reason (a mint the rail does not take, an
 * amount below the minimum) and kept. The row's key and the ledger's idempotency key both carry
 * the signature, and a signature's rows and the cursor move commit together: a restart, a second
 * watcher or a crash mid-beat credits nothing twice.
 */
import type { Kysely } from "kysely";
import { MAX_AMOUNT_UNITS, neg, units, type Currency } from "../../../core/money.ts";
import type { Database } from "../../store/schema.ts";
import { Leg, TransactionKind, externalAccount, walletAccount } from "../ledger-accounts.ts";
import { inTransaction, requestHash, type Ledger, type Tx } from "../ledger.ts";
import type { Commitment, SignatureInfo, SolanaChain, TokenAccount } from "./chain.ts";
import type { DepositAddresses } from "./deposit-addresses.ts";

/** The ledger's `external:solana` account is the chain's side of every deposit. */
export const SOLANA_RAIL = "solana";

export const RefusalReason = {
  UNKNOWN_MINT: "unknown_mint",
  BELOW_MINIMUM: "below_minimum",
  TOO_LARGE: "too_large",
} as const;

export interface WatcherSettings {
  readonly commitment: Commitment;
  readonly mints: Readonly<Partial<Record<Currency, string>>>;
  /** Smallest creditable amount per currency (units); smaller transfers are recorded, refused. */
  readonly minimumUnits: Readonly<Partial<Record<Currency, bigint>>>;
  /** Signatures asked per page. */
  readonly pageSize?: number;
}

export interface ScanResult {
  credited: number;
  refused: number;
}

interface Found {
  readonly accountId: string;
  readonly tokenAccount: TokenAccount;
  readonly signature: string;
  readonly slot: bigint;
}

export class DepositWatcher {
  constructor(
    private readonly deps: {
      readonly db: Kysely<Database>;
      readonly ledger: Ledger;
      readonly chain: SolanaChain;
      readonly addresses: DepositAddresses;
      readonly clock: { now(): number };
    },
    private readonly settings: WatcherSettings,
  ) {}

  /** One pass over every deposit owner; ends early between two signatures when `signal` fires. */
  async scan(signal?: AbortSignal): Promise<ScanResult> {
    const result: ScanResult = { credited: 0, refused: 0 };
    for (const { owner, accountId } of await this.deps.addresses.owners()) {
      const held = await this.deps.chain.tokenAccountsByOwner(owner, this.settings.commitment);
      for (const tokenAccount of held) {
        if (signal?.aborted === true) return result;
        await this.scanTokenAccount(accountId, tokenAccount, result, signal);
      }
    }
    return result;
  }

  private async scanTokenAccount(
    accountId: string,
    tokenAccount: TokenAccount,
    result: ScanResult,
    signal: AbortSignal | undefined,
  ): Promise<void> {
    for (const info of await this.newSignatures(tokenAccount.address)) {
      if (signal?.aborted === true) return;
      const handled = await this.handle({ accountId, tokenAccount, ...info }, info.failed, result);
      // Not readable at this commitment yet: later signatures wait behind it, next beat.
      if (!handled) return;
    }
  }

  /** Signatures newer than the account's cursor, oldest first. */
  private async newSignatures(address: string): Promise<SignatureInfo[]> {
    const cursor = await this.deps.db
      .selectFrom("solana_watch_cursors")
      .select("last_signature")
      .where("address", "=", address)
      .executeTakeFirst();
    const limit = this.settings.pageSize ?? 1000;
    const found: SignatureInfo[] = [];
    for (let before: string | undefined; ;) {
      const page = await this.deps.chain.signaturesForAddress(address, {
        commitment: this.settings.commitment,
        limit,
        ...(before === undefined ? {} : { before }),
        ...(cursor === undefined ? {} : { until: cursor.last_signature }),
      });
      found.push(...page);
      if (page.length < limit) break;
      before = page.at(-1)!.signature;
    }
    return found.reverse();
  }

  /** Records one signature's transfers into the account and moves its cursor: false if unread. */
  private async handle(found: Found, failed: boolean, result: ScanResult): Promise<boolean> {
    const tx = failed
      ? null
      : await this.deps.chain.transaction(found.signature, this.settings.commitment);
    if (!failed && tx === null) return false;
    const transfers = (tx?.transfers ?? []).filter(
      (t) => t.destination === found.tokenAccount.address && t.amount > 0n,
    );
    const nowMs = this.deps.clock.now();
    await inTransaction(this.deps.db, async (dbTx) => {
      for (const transfer of transfers) {
        const outcome = await this.record(
          dbTx,
          found,
          transfer.instruction,
          transfer.amount,
          nowMs,
        );
        if (outcome !== undefined) result[outcome]++;
      }
      await dbTx
        .insertInto("solana_watch_cursors")
        .values({
          address: found.tokenAccount.address,
          last_signature: found.signature,
          updated_at: nowMs,
        })
        .onConflict((c) =>
          c.column("address").doUpdateSet({ last_signature: found.signature, updated_at: nowMs }),
        )
        .execute();
    });
    return true;
  }

  /** One transfer, once: credited or refused; undefined when an earlier pass recorded it. */
  private async record(
    tx: Tx,
    found: Found,
    instruction: string,
    amount: bigint,
    nowMs: number,
  ): Promise<"credited" | "refused" | undefined> {
    const key = `solana:${found.signature}:${instruction}`;
    await this.deps.ledger.lockKey(tx, key);
    const seen = await tx
      .selectFrom("solana_deposits")
      .select("signature")
      .where("signature", "=", found.signature)
      .where("instruction", "=", instruction)
      .executeTakeFirst();
    if (seen !== undefined) return undefined;
    const { mint, address } = found.tokenAccount;
    const currency = this.currencyOf(mint);
    const reason = this.refusal(currency, amount);
    const transactionId =
      reason === null && currency !== undefined
        ? await this.credit(tx, key, found, instruction, currency, amount, nowMs)
        : null;
    await tx
      .insertInto("solana_deposits")
      .values({
        signature: found.signature,
        instruction,
        slot: Number(found.slot),
        address,
        account_id: found.accountId,
        mint,
        currency: currency ?? null,
        amount: amount.toString(),
        reason,
        transaction_id: transactionId,
        created_at: nowMs,
      })
      .execute();
    return reason === null ? "credited" : "refused";
  }

  private currencyOf(mint: string): Currency | undefined {
    const entry = Object.entries(this.settings.mints).find(([, m]) => m === mint);
    return entry?.[0] as Currency | undefined;
  }

  private refusal(currency: Currency | undefined, amount: bigint): string | null {
    if (currency === undefined) return RefusalReason.UNKNOWN_MINT;
    if (amount < (this.settings.minimumUnits[currency] ?? 1n)) return RefusalReason.BELOW_MINIMUM;
    // One movement's bound (core/money.ts): no deposit can take a balance near its 64-bit limit.
    if (amount > MAX_AMOUNT_UNITS) return RefusalReason.TOO_LARGE;
    return null;
  }

  private async credit(
    tx: Tx,
    key: string,
    found: Found,
    instruction: string,
    currency: Currency,
    amount: bigint,
    nowMs: number,
  ): Promise<string> {
    const money = units(amount);
    const { id } = await this.deps.ledger.record(tx, {
      idempotencyKey: key,
      kind: TransactionKind.DEPOSIT,
      requestHash: requestHash(TransactionKind.DEPOSIT, {
        accountId: found.accountId,
        currency,
        amount: money,
        signature: found.signature,
        instruction,
      }),
      accountId: found.accountId,
      metadata: {
        rail: SOLANA_RAIL,
        railReference: found.signature,
        instruction,
        mint: found.tokenAccount.mint,
        slot: found.slot.toString(),
      },
      response: (transactionId) => ({ transactionId }),
      nowMs,
      postings: [
        { account: externalAccount(SOLANA_RAIL), currency, amount: neg(money), leg: Leg.DEPOSIT },
        { account: walletAccount(found.accountId), currency, amount: money, leg: Leg.DEPOSIT },
      ],
    });
    return id;
  }
}
