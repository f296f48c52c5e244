/**
 * The chain port over a Solana JSON-RPC node, through `@solana/kit`'s RPC client. Transactions are
 * read `jsonParsed`, so the node decodes SPL Token instructions and this file only picks out the
 * transfers.
 */
import {
  address,
  createSolanaRpc,
  signature as toSignature,
  type Base64EncodedWireTransaction,
} from "@solana/kit";
import {
  TOKEN_PROGRAM,
  type ChainTransaction,
  type Commitment,
  type SignatureInfo,
  type SolanaChain,
  type TokenAccount,
  type TokenTransfer,
} from "./chain.ts";

/** A parsed instruction as the node returns it (`jsonParsed`); unparsed ones lack `parsed`. */
interface ParsedInstruction {
  programId?: string;
  parsed?: { type?: string; info?: Record<string, unknown> };
}

export class RpcChain implements SolanaChain {
  private readonly rpc;

  constructor(url: string) {
    this.rpc = createSolanaRpc(url);
  }

  async tokenAccountsByOwner(owner: string, commitment: Commitment): Promise<TokenAccount[]> {
    const { value } = await this.rpc
      .getTokenAccountsByOwner(
        address(owner),
        { programId: address(TOKEN_PROGRAM) },
        { commitment, encoding: "jsonParsed" },
      )
      .send();
    return value.map((a) => ({
      address: a.pubkey,
      mint: a.account.data.parsed.info.mint,
    }));
  }

  async signaturesForAddress(
    at: string,
    options: { commitment: Commitment; limit: number; before?: string; until?: string },
  ): Promise<SignatureInfo[]> {
    const rows = await this.rpc
      .getSignaturesForAddress(address(at), {
        // The node answers signatures at confirmed or finalized only.
        commitment: options.commitment === "processed" ? "confirmed" : options.commitment,
        limit: options.limit,
        ...(options.before === undefined ? {} : { before: toSignature(options.before) }),
        ...(options.until === undefined ? {} : { until: toSignature(options.until) }),
      })
      .send();
    return rows.map((r) => ({ signature: r.signature, slot: r.slot, failed: r.err !== null }));
  }

  async transaction(signature: string, commitment: Commitment): Promise<ChainTransaction | null> {
    const tx = await this.rpc
      .getTransaction(toSignature(signature), {
        commitment: commitment === "processed" ? "confirmed" : commitment,
        encoding: "jsonParsed",
        maxSupportedTransactionVersion: 0,
      })
      .send();
    if (tx === null) return null;
    const top = tx.transaction.message.instructions as readonly ParsedInstruction[];
    const inner = (tx.meta?.innerInstructions ?? []) as ReadonlyArray<{
      index: number;
      instructions: readonly ParsedInstruction[];
    }>;
    return {
      signature,
      slot: tx.slot,
      failed: tx.meta?.err != null,
      transfers: [
        ...top.flatMap((ix, i) => transferOf(ix, String(i))),
        ...inner.flatMap((group) =>
          group.instructions.flatMap((ix, j) => transferOf(ix, `${group.index}.${j}`)),
        ),
      ],
    };
  }

  async latestBlockhash(commitment: Commitment) {
    const { value } = await this.rpc.getLatestBlockhash({ commitment }).send();
    return { blockhash: value.blockhash, lastValidBlockHeight: value.lastValidBlockHeight };
  }

  async sendTransaction(wireBase64: string): Promise<string> {
    return await this.rpc
      .sendTransaction(wireBase64 as Base64EncodedWireTransaction, { encoding: "base64" })
      .send();
  }
}

/** The transfer a parsed SPL Token instruction makes, if it is one. */
function transferOf(ix: ParsedInstruction, instruction: string): TokenTransfer[] {
  if (ix.programId !== TOKEN_PROGRAM || ix.parsed?.info === undefined) return [];
  const { type, info } = ix.parsed;
  const amount =
    type === "transfer"
      ? info.amount
      : type === "transferChecked"
        ? (info.tokenAmount as { amount?: unknown } | undefined)?.amount
        : undefined;
  // A node answering garbage yields no transfer rather than a thrown BigInt or a wrong amount.
  if (typeof amount !== "string" || !/^\d{1,20}$/.test(amount)) return [];
  if (typeof info.destination !== "string") return [];
  return [
    {
      instruction,
      source: String(info.source),
      destination: info.destination,
      amount: BigInt(amount),
    },
  ];
}
