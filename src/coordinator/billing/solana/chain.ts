/**
 * The Solana chain as the rail sees it: the few RPC calls it makes, shaped like Solana's JSON-RPC
 * (`getSignaturesForAddress`, `getTransaction`, `getTokenAccountsByOwner`, `getLatestBlockhash`,
 * `sendTransaction`), each at an explicit commitment. Production speaks to a node
 * (rpc-chain.ts); tests put a real Solana VM behind the same interface (test/support/litesvm-chain.ts).
 */

/** How settled a read must be: `finalized` (the rail's default) can no longer be rolled back. */
export type Commitment = "processed" | "confirmed" | "finalized";

export interface SignatureInfo {
  readonly signature: string;
  readonly slot: bigint;
  /** The transaction failed on chain: it moved nothing. */
  readonly failed: boolean;
}

/** An SPL Token `transfer` or `transferChecked`, top-level or inner. */
export interface TokenTransfer {
  /** Where it sits in its transaction: `"2"` (top-level) or `"2.0"` (inner, under top-level 2). */
  readonly instruction: string;
  readonly source: string;
  readonly destination: string;
  /** In the mint's smallest units. */
  readonly amount: bigint;
}

export interface ChainTransaction {
  readonly signature: string;
  readonly slot: bigint;
  readonly failed: boolean;
  readonly transfers: readonly TokenTransfer[];
}

export interface TokenAccount {
  readonly address: string;
  readonly mint: string;
}

export interface SolanaChain {
  /** Token accounts (SPL Token program) whose owner is `owner`. */
  tokenAccountsByOwner(owner: string, commitment: Commitment): Promise<TokenAccount[]>;
  /**
   * Signatures that touched `address`, newest first, at most `limit`: older than `before` when
   * given, and stopping short of `until` (exclusive) when given.
   */
  signaturesForAddress(
    address: string,
    options: { commitment: Commitment; limit: number; before?: string; until?: string },
  ): Promise<SignatureInfo[]>;
  /** The transaction at that commitment, or null when the chain has none (yet). */
  transaction(signature: string, commitment: Commitment): Promise<ChainTransaction | null>;
  latestBlockhash(
    commitment: Commitment,
  ): Promise<{ blockhash: string; lastValidBlockHeight: bigint }>;
  /** Sends a signed transaction (wire bytes, base64); answers its signature. */
  sendTransaction(wireBase64: string): Promise<string>;
}

/** The SPL Token program, where every deposit's transfer runs. */
export const TOKEN_PROGRAM = "TokenkegQfeZyiNwAJbNbGKPFXCWuBvf9Ss623VQ5DA";
