/**
 * The rail's chain port over LiteSVM: a real Solana VM in-process (System, SPL Token and ATA
 * programs), for tests. LiteSVM runs transactions but keeps no address index, so this adapter
 * keeps what a node's ledger would: each transaction sent through it, its slot and the accounts
 * it named, and answers `getSignaturesForAddress` / `getTransaction` from that. Transfers are
 * decoded from the compiled message (and its inner instructions) as a node's `jsonParsed` does.
 *
 * Finality: every slot is finalized as it is made, unless a test `holdFinality()`: then new
 * transactions are visible at `confirmed` only, until `finalize()`.
 */
import {
  address,
  appendTransactionMessageInstructions,
  createTransactionMessage,
  generateKeyPairSigner,
  getBase64Encoder,
  getCompiledTransactionMessageDecoder,
  getSignatureFromTransaction,
  getTransactionDecoder,
  lamports,
  pipe,
  setTransactionMessageFeePayerSigner,
  signTransactionMessageWithSigners,
  type Instruction,
  type KeyPairSigner,
  type Transaction,
} from "@solana/kit";
import {
  TOKEN_PROGRAM_ADDRESS,
  findAssociatedTokenPda,
  getCreateAssociatedTokenIdempotentInstructionAsync,
  getMintEncoder,
  getTokenDecoder,
  getTokenEncoder,
  getTransferCheckedInstruction,
  AccountState,
} from "@solana-program/token";
import { FailedTransactionMetadata, LiteSVM } from "litesvm";
import {
  TOKEN_PROGRAM,
  type ChainTransaction,
  type Commitment,
  type SignatureInfo,
  type SolanaChain,
  type TokenAccount,
  type TokenTransfer,
} from "../../src/coordinator/billing/solana/chain.ts";

interface Logged extends ChainTransaction {
  readonly accounts: readonly string[];
}

const TOKEN_ACCOUNT_SIZE = 165;
/** SPL Token instruction tags: Transfer (source, destination, authority; amount u64). */
const TRANSFER = 3;
/** TransferChecked (source, mint, destination, authority; amount u64, decimals u8). */
const TRANSFER_CHECKED = 12;

export class LiteSvmChain implements SolanaChain {
  readonly svm = new LiteSVM();
  private readonly log: Logged[] = [];
  private finalizedSlot: bigint | undefined;
  private holding = false;

  /** New transactions stay unfinalized (visible at `confirmed`) until `finalize()`. */
  holdFinality(): void {
    this.finalizedSlot = this.slot() - 1n;
    this.holding = true;
  }

  /** Everything made so far is finalized, and so is what comes next. */
  finalize(): void {
    this.holding = false;
    this.finalizedSlot = undefined;
  }

  tokenAccountsByOwner(owner: string, _commitment: Commitment): Promise<TokenAccount[]> {
    const decoder = getTokenDecoder();
    const found = this.svm
      .getProgramAccounts(TOKEN_PROGRAM_ADDRESS)
      .filter((a) => a.data.length === TOKEN_ACCOUNT_SIZE)
      .map((a) => ({ address: a.address, token: decoder.decode(a.data) }))
      .filter((a) => a.token.owner === owner)
      .map((a) => ({ address: a.address, mint: a.token.mint }));
    return Promise.resolve(found);
  }

  signaturesForAddress(
    at: string,
    options: { commitment: Commitment; limit: number; before?: string; until?: string },
  ): Promise<SignatureInfo[]> {
    const newestFirst = this.visible(options.commitment)
      .filter((t) => t.accounts.includes(at))
      .reverse();
    let from = 0;
    if (options.before !== undefined)
      from = newestFirst.findIndex((t) => t.signature === options.before) + 1;
    const out: SignatureInfo[] = [];
    for (const t of newestFirst.slice(from)) {
      if (t.signature === options.until || out.length === options.limit) break;
      out.push({ signature: t.signature, slot: t.slot, failed: t.failed });
    }
    return Promise.resolve(out);
  }

  transaction(signature: string, commitment: Commitment): Promise<ChainTransaction | null> {
    const t = this.visible(commitment).find((x) => x.signature === signature);
    return Promise.resolve(
      t === undefined
        ? null
        : { signature: t.signature, slot: t.slot, failed: t.failed, transfers: t.transfers },
    );
  }

  latestBlockhash(_commitment: Commitment) {
    return Promise.resolve({
      blockhash: this.svm.latestBlockhash(),
      lastValidBlockHeight: this.slot() + 150n,
    });
  }

  sendTransaction(wireBase64: string): Promise<string> {
    const tx = getTransactionDecoder().decode(getBase64Encoder().encode(wireBase64));
    return Promise.resolve(this.submit(tx));
  }

  /** Runs a signed transaction in its own slot and logs it; answers its signature. */
  submit(tx: Transaction): string {
    const slot = this.slot();
    const result = this.svm.sendTransaction(tx);
    const failed = result instanceof FailedTransactionMetadata;
    const message = getCompiledTransactionMessageDecoder().decode(tx.messageBytes);
    const accounts = message.staticAccounts.map(String);
    const compiled = "instructions" in message ? message.instructions : [];
    const top = compiled.map((ix, i) =>
      transferOf(accounts, ix.programAddressIndex, ix.accountIndices ?? [], ix.data, String(i)),
    );
    const meta = failed ? result.meta() : result;
    const inner = meta.innerInstructions().flatMap((group, i) =>
      group.map((x, j) => {
        const c = x.instruction();
        return transferOf(accounts, c.programIdIndex(), [...c.accounts()], c.data(), `${i}.${j}`);
      }),
    );
    const signature = getSignatureFromTransaction(tx) as string;
    const transfers = failed ? [] : [...top, ...inner].flat();
    this.log.push({ signature, slot, failed, transfers, accounts });
    if (!this.holding) this.finalizedSlot = undefined;
    // One transaction per slot, each with a fresh blockhash (two equal transfers differ).
    this.svm.warpToSlot(slot + 1n);
    this.svm.expireBlockhash();
    return signature;
  }

  private slot(): bigint {
    return this.svm.getClock().slot;
  }

  private visible(commitment: Commitment): Logged[] {
    const last = this.finalizedSlot;
    if (commitment !== "finalized" || last === undefined) return this.log;
    return this.log.filter((t) => t.slot <= last);
  }
}

function transferOf(
  accounts: readonly string[],
  programIndex: number,
  accountIndices: readonly number[],
  data: { readonly length: number; readonly [i: number]: number } | undefined,
  instruction: string,
): TokenTransfer[] {
  if (accounts[programIndex] !== TOKEN_PROGRAM || data === undefined || data.length < 9) return [];
  const tag = data[0];
  if (tag !== TRANSFER && tag !== TRANSFER_CHECKED) return [];
  let amount = 0n;
  for (let i = 8; i >= 1; i--) amount = (amount << 8n) | BigInt(data[i] ?? 0);
  const at = (i: number) => accounts[accountIndices[i] ?? -1] ?? "";
  const destination = tag === TRANSFER ? at(1) : at(2);
  return [{ instruction, source: at(0), destination, amount }];
}

/** Mints, funded holders and payers on a `LiteSvmChain`, for deposit tests. */
export class SplFixture {
  constructor(readonly chain: LiteSvmChain) {}

  /** A 6-decimal mint (USDC's and the rail's decimals) at a fresh address. */
  async mint(): Promise<string> {
    const mint = (await generateKeyPairSigner()).address;
    const data = getMintEncoder().encode({
      mintAuthority: null,
      supply: 10n ** 15n,
      decimals: 6,
      isInitialized: true,
      freezeAuthority: null,
    });
    this.setAccount(mint, TOKEN_PROGRAM_ADDRESS, new Uint8Array(data));
    return mint;
  }

  /** A payer with SOL for fees and `amount` of `mint` in its associated token account. */
  async holder(mint: string, amount: bigint): Promise<KeyPairSigner> {
    const signer = await generateKeyPairSigner();
    this.chain.svm.airdrop(signer.address, lamports(10_000_000_000n));
    const [ata] = await findAssociatedTokenPda({
      owner: signer.address,
      mint: address(mint),
      tokenProgram: TOKEN_PROGRAM_ADDRESS,
    });
    const data = getTokenEncoder().encode({
      mint: address(mint),
      owner: signer.address,
      amount,
      delegate: null,
      state: AccountState.Initialized,
      isNative: null,
      delegatedAmount: 0n,
      closeAuthority: null,
    });
    this.setAccount(ata, TOKEN_PROGRAM_ADDRESS, new Uint8Array(data));
    return signer;
  }

  /**
   * `from` pays `amount` of `mint` to `owner`'s associated token account, creating it if need
   * be (as a wallet does), in one transaction: answers its signature.
   */
  async pay(from: KeyPairSigner, mint: string, owner: string, amount: bigint): Promise<string> {
    const tokenProgram = TOKEN_PROGRAM_ADDRESS;
    const [source] = await findAssociatedTokenPda({
      owner: from.address,
      mint: address(mint),
      tokenProgram,
    });
    const [destination] = await findAssociatedTokenPda({
      owner: address(owner),
      mint: address(mint),
      tokenProgram,
    });
    const create = await getCreateAssociatedTokenIdempotentInstructionAsync({
      payer: from,
      owner: address(owner),
      mint: address(mint),
    });
    const transfer = getTransferCheckedInstruction({
      source,
      mint: address(mint),
      destination,
      authority: from,
      amount,
      decimals: 6,
    });
    return this.chain.submit(await this.signed(from, [create, transfer]));
  }

  private async signed(payer: KeyPairSigner, instructions: Instruction[]): Promise<Transaction> {
    return await pipe(
      createTransactionMessage({ version: 0 }),
      (m) => setTransactionMessageFeePayerSigner(payer, m),
      (m) => this.chain.svm.setTransactionMessageLifetimeUsingLatestBlockhash(m),
      (m) => appendTransactionMessageInstructions(instructions, m),
      (m) => signTransactionMessageWithSigners(m),
    );
  }

  private setAccount(at: string, owner: string, data: Uint8Array): void {
    this.chain.svm.setAccount({
      address: address(at),
      data,
      executable: false,
      lamports: lamports(this.chain.svm.minimumBalanceForRentExemption(BigInt(data.length))),
      programAddress: address(owner),
      space: BigInt(data.length),
    });
  }
}
