/**
 * Deposit addresses: each account has its own deposit owner on Solana, an Ed25519 key whose seed
 * is HKDF-SHA256(treasury secret, account id), and, per currency, the owner's associated token
 * account for that currency's mint is where a payer sends. Derived, not generated: the treasury
 * secret alone recovers every owner key (withdrawing from a deposit account needs no stored key),
 * and nothing secret is stored. The mapping is stored (migration 0030) so the watcher knows which
 * owners to watch and a deposit finds its account.
 */
import { hkdfSync } from "node:crypto";
import { createKeyPairFromPrivateKeyBytes, getAddressFromPublicKey, address } from "@solana/kit";
import { findAssociatedTokenPda } from "@solana-program/token";
import type { Kysely } from "kysely";
import { ErrorCode, TandemError } from "../../../core/errors.ts";
import type { Currency } from "../../../core/money.ts";
import type { Database } from "../../store/schema.ts";
import { TOKEN_PROGRAM } from "./chain.ts";

export interface DepositAddress {
  readonly accountId: string;
  readonly currency: Currency;
  readonly mint: string;
  /** Who owns the token account: the key derived for this account. */
  readonly owner: string;
  /** Where to send: the owner's associated token account for `mint`. */
  readonly address: string;
}

/** Separates these keys from any other use of the treasury secret. */
const HKDF_SALT = "tandem/solana/deposit-owner/v1";

/** The 32-byte Ed25519 seed of an account's deposit owner. */
export function depositOwnerSeed(treasurySecret: Uint8Array, accountId: string): Uint8Array {
  return new Uint8Array(hkdfSync("sha256", treasurySecret, HKDF_SALT, accountId, 32));
}

export async function depositOwner(treasurySecret: Uint8Array, accountId: string) {
  const keys = await createKeyPairFromPrivateKeyBytes(depositOwnerSeed(treasurySecret, accountId));
  return await getAddressFromPublicKey(keys.publicKey);
}

export class DepositAddresses {
  constructor(
    private readonly db: Kysely<Database>,
    private readonly settings: {
      readonly treasurySecret: Uint8Array;
      readonly mints: Readonly<Partial<Record<Currency, string>>>;
    },
  ) {}

  /** The account's address for `currency`, stored on first ask; the same ever after. */
  async addressFor(accountId: string, currency: Currency, nowMs: number): Promise<DepositAddress> {
    const mint = this.settings.mints[currency];
    if (mint === undefined)
      throw new TandemError(
        ErrorCode.UNKNOWN_CURRENCY,
        `no ${currency} deposits on Solana: the rail takes ${Object.keys(this.settings.mints).join(", ")}`,
        { details: { currency, accepted: Object.keys(this.settings.mints) } },
      );
    const stored = await this.db
      .selectFrom("solana_deposit_addresses")
      .select(["owner", "mint", "address"])
      .where("account_id", "=", accountId)
      .where("currency", "=", currency)
      .executeTakeFirst();
    // A stored address stays valid even if the configured mint changed: funds sent to it are
    // still watched (under the unknown-mint reason when the mint is no longer configured).
    if (stored !== undefined) return { accountId, currency, ...stored };
    const owner = await depositOwner(this.settings.treasurySecret, accountId);
    const [ata] = await findAssociatedTokenPda({
      owner,
      mint: address(mint),
      tokenProgram: address(TOKEN_PROGRAM),
    });
    await this.db
      .insertInto("solana_deposit_addresses")
      .values({ account_id: accountId, currency, owner, mint, address: ata, created_at: nowMs })
      .onConflict((c) => c.columns(["account_id", "currency"]).doNothing())
      .execute();
    return { accountId, currency, mint, owner, address: ata };
  }

  /** Every owner to watch, with its account. */
  async owners(): Promise<Array<{ owner: string; accountId: string }>> {
    const rows = await this.db
      .selectFrom("solana_deposit_addresses")
      .select(["owner", "account_id"])
      .distinct()
      .orderBy("owner")
      .execute();
    return rows.map((r) => ({ owner: r.owner, accountId: r.account_id }));
  }
}
