/**
 * The Solana rail's wiring: the treasury key, the RPC chain, deposit addresses and the deposit
 * watcher's leader loop, from the coordinator's `solana` config (absent: the rail is off).
 */
import { readFileSync } from "node:fs";
import type { FastifyBaseLogger } from "fastify";
import type { Kysely } from "kysely";
import type { Currency } from "../../../core/money.ts";
import type { CoordinatorConfig } from "../../config.ts";
import { LeaderLoop } from "../../replicas/leader-loop.ts";
import type { Leadership } from "../../replicas/leader-election.ts";
import type { Database } from "../../store/schema.ts";
import type { Ledger } from "../ledger.ts";
import { DepositAddresses } from "./deposit-addresses.ts";
import { DepositWatcher } from "./deposit-watcher.ts";
import { RpcChain } from "./rpc-chain.ts";

export const TREASURY_KEY_ENV = "TANDEM_SOLANA_TREASURY_KEY";

type SolanaConfig = NonNullable<CoordinatorConfig["solana"]>;

/**
 * The treasury's secret: a keypair as `solana-keygen` writes it (a JSON array of 64 bytes, the
 * first 32 the seed), from the file or else the environment variable. Fails fast, naming which.
 */
export function loadTreasurySecret(
  config: Pick<SolanaConfig, "treasuryKeyFile">,
  env: NodeJS.ProcessEnv = process.env,
): Uint8Array {
  const file = config.treasuryKeyFile;
  const source = file === undefined ? `$${TREASURY_KEY_ENV}` : file;
  let text: string | undefined;
  try {
    text = file === undefined ? env[TREASURY_KEY_ENV] : readFileSync(file, "utf8");
  } catch (error) {
    throw new Error(`invalid coordinator config: solana.treasuryKeyFile: cannot read ${file}`, {
      cause: error,
    });
  }
  const bytes = parseKeypair(text);
  if (bytes === undefined)
    throw new Error(
      `invalid coordinator config: the Solana treasury key (${source}) must be a JSON array of 64 bytes`,
    );
  return bytes.slice(0, 32);
}

function parseKeypair(text: string | undefined): Uint8Array | undefined {
  if (text === undefined) return undefined;
  try {
    const value: unknown = JSON.parse(text);
    if (
      Array.isArray(value) &&
      value.length === 64 &&
      value.every((b) => Number.isInteger(b) && (b as number) >= 0 && (b as number) <= 255)
    )
      return Uint8Array.from(value as number[]);
  } catch {
    // Not JSON: reported below as a bad key.
  }
  return undefined;
}

export interface SolanaRail {
  readonly addresses: DepositAddresses;
  readonly watcher: LeaderLoop;
}

/** The rail when configured, its watcher started on the leader; undefined when off. */
export function startSolanaRail(
  config: SolanaConfig | undefined,
  deps: {
    db: Kysely<Database>;
    ledger: Ledger;
    clock: { now(): number };
    leadership: Pick<Leadership, "asLeader">;
    logger: FastifyBaseLogger;
  },
): SolanaRail | undefined {
  if (config === undefined) return undefined;
  const mints = config.mints as Partial<Record<Currency, string>>;
  const addresses = new DepositAddresses(deps.db, {
    treasurySecret: loadTreasurySecret(config),
    mints,
  });
  const minimum = BigInt(config.minimumUnits);
  const scanner = new DepositWatcher(
    { ...deps, chain: new RpcChain(config.rpcUrl), addresses },
    { commitment: config.commitment, mints, minimumUnits: { USDC: minimum, TDM: minimum } },
  );
  const watcher = new LeaderLoop(
    "solana deposits",
    async (stopping) => {
      await scanner.scan(stopping);
    },
    deps,
    config.pollMs,
  );
  watcher.start({ now: true });
  return { addresses, watcher };
}
