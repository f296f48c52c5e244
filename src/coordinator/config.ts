import { isIP } from "node:net";
import { join } from "node:path";
import { z } from "zod";
import { DEFAULT_PROOF_POLICY as D, PROOF_MAX_K } from "../core/hardware-proof.ts";

/** Coordinator settings, parsed once at start; a bad value fails fast naming its field. */
export const CoordinatorConfig = z.strictObject({
  /** State directory: the SQLite file and admin.key live here. */
  home: z.string().min(1),
  host: z.string().default("127.0.0.1"),
  port: z.number().int().min(0).max(65_535).default(7400),
  /**
   * PEM certificate (chain) and private key: with both, the API and the worker channel are served
   * over TLS (https, wss) on `port`; with neither, plain HTTP (loopback, or behind a TLS proxy).
   */
  tlsCertFile: z.string().min(1).optional(),
  tlsKeyFile: z.string().min(1).optional(),
  /**
   * Reverse proxies (addresses or CIDRs, comma-separated) whose `X-Forwarded-For` names the
   * client: behind a TLS proxy, the address each worker is seen at (its overlay endpoint, the
   * per-address caps) and each caller's rate limit come from it. Absent, the header is ignored.
   */
  trustProxy: z
    .string()
    .refine(
      (value) => value.split(",").every((part) => isAddressOrCidr(part.trim())),
      "expected addresses or CIDRs, comma-separated (e.g. 127.0.0.1 or 10.0.0.0/8,::1)",
    )
    .optional(),
  /** PostgreSQL URL; absent means SQLite at `<home>/coordinator.db`. */
  databaseUrl: z
    .string()
    .regex(/^postgres(ql)?:\/\//, "expected a postgres:// URL")
    .optional(),
  /**
   * A file holding the PostgreSQL password (its first line), for a `databaseUrl` without one, so
   * the password is not in the command line; `PGPASSWORD` works too.
   */
  databasePasswordFile: z.string().min(1).optional(),
  sqlitePath: z.string().optional(),
  /**
   * How long a SQLite write waits for a lock held by another process (a backup, a `sqlite3`
   * shell), ms, while the coordinator keeps serving; then the request answers 503 UNAVAILABLE.
   */
  sqliteBusyWaitMs: z.number().int().min(0).default(10_000),
  /** Whether anyone may create an account (otherwise only an admin may). */
  openSignup: z.boolean().default(true),
  /**
   * How often workers beat, ms (default 1000): a silent node is declared dead after
   * `missedHeartbeats` of them (3 s), one whose connection closed ¾ interval sooner.
   */
  heartbeatIntervalMs: z.number().int().min(50).max(60_000).default(1000),
  /** How often silent nodes are looked for, ms; 0 disables the timer (tests drive `gateway.sweep()`). */
  livenessSweepMs: z.number().int().min(0).optional(),
  missedHeartbeats: z.number().int().min(1).max(100).default(3),
  /**
   * After a start, how much longer than the usual deadline a node that the store still shows
   * online gets to reconnect, ms: its worker may be waiting out a reconnect backoff (up to 10 s
   * by default) when the coordinator comes back. Such a node is neither placed nor promoted
   * until heard from, and one that never comes back is moved on without a slash.
   */
  restartGraceMs: z.number().int().min(0).default(12_000),
  /** A worker connection must prove its key within this, ms (one signed nonce: a round trip). */
  authTimeoutMs: z.number().int().min(100).default(3000),
  /** Worker connections still waiting to authenticate, at most, from one remote address. */
  maxUnauthenticatedPerAddress: z.number().int().min(1).default(32),
  /** Worker connections still waiting to authenticate, at most, in all. */
  maxUnauthenticated: z.number().int().min(1).default(1024),
  rateLimitPerMinute: z.number().int().min(1).default(1200),
  bodyLimitBytes: z
    .number()
    .int()
    .min(1024)
    .default(256 * 1024),
  /**
   * How proofs of hardware are sized and judged (src/core/hardware-proof.ts; each field defaults
   * to DEFAULT_PROOF_POLICY's).
   */
  proof: z
    .strictObject({
      gpuTargetMs: z.number().positive().max(600_000).default(D.gpuTargetMs),
      gpuK: z.number().int().min(1).max(PROOF_MAX_K).default(D.gpuK),
      vramFraction: z.number().min(0).max(1).default(D.vramFraction),
      cpuN: z.number().int().min(1).max(65_536).default(D.cpuN),
      cpuK: z.number().int().min(1).max(PROOF_MAX_K).default(D.cpuK),
      cpuCoreGflops: z.number().positive().default(D.cpuCoreGflops),
      minFraction: z.number().positive().max(1).default(D.minFraction),
      maxFraction: z.number().min(1).default(D.maxFraction),
      overheadMs: z.number().int().min(0).max(600_000).default(D.overheadMs),
      openedCells: z.number().int().min(1).max(64).default(D.openedCells),
    })
    .prefault({}),
  /**
   * The longest an idle node goes without a proof of its hardware, ms: spot checks come at random
   * between half of this and this after the last proof (verification/spot-checks.ts). Default one
   * hour; `tandem dev` two minutes.
   */
  proofIntervalMs: z.number().int().min(1000).default(3_600_000),
  /** A reserved worker must accept its rank within this, ms, or the reservation lapses. */
  reservationTtlMs: z.number().int().min(100).default(15_000),
  /** A standby (shadow) node's hourly rate, as a percentage of its own price (issue 5: 10%). */
  standbyPricePercent: z.number().int().min(0).max(100).default(10),
  /**
   * `required`: every rank runs in its own network namespace, and a multi-node cluster's ranks
   * on their overlay, so nodes that cannot build them are not placed (DESIGN rule 8.5).
   * `optional` (`tandem dev` on a machine that cannot): such nodes run ranks on the host's
   * network, except for a deploy that refuses the internet.
   */
  jobNetworks: z.enum(["required", "optional"]).default("optional"),
  /** An autoscaled cluster releases a node idle this long when no task waits, ms. */
  scaleDownIdleMs: z.number().int().min(0).default(60_000),
  /**
   * Most queued tasks an idle node of an autoscaled cluster takes at once, run one after another
   * in one sandbox (scheduler/task-runs.ts); 1: one sandbox per task. Default 32 (the most).
   */
  maxTasksPerRun: z.number().int().min(1).max(32).default(32),
  /** How often served time is settled and expiries checked, ms. */
  schedulerTickMs: z.number().int().min(50).default(1000),
  /**
   * Replicas on one PostgreSQL (DESIGN.md §7): how often a follower tries to take the lead of the
   * singleton loops, and the leader shows it is alive, ms. A killed leader is replaced within this.
   */
  leaderPollMs: z.number().int().min(50).max(60_000).default(500),
  /**
   * A leader silent this long (paused, stuck) loses the lead, ms; at least twice `leaderPollMs`.
   * Long enough that a loaded machine's event-loop stall does not move the lead; a killed leader
   * is replaced within `leaderPollMs` whatever this is. Needs PostgreSQL 14 or later
   * (`idle_session_timeout`).
   */
  leaderLeaseMs: z.number().int().min(100).max(600_000).default(10_000),
  /** Replicas on one PostgreSQL: how often each says it is alive, ms. */
  replicaAliveMs: z.number().int().min(50).max(60_000).default(1000),
  /**
   * A replica silent this long is dead, ms: the leader watches its workers until they reconnect
   * to another replica or are declared offline.
   */
  replicaDeadAfterMs: z.number().int().min(100).max(600_000).default(5000),
  /**
   * The network's genesis time, ms since the epoch: emission hour 0 begins here. Absent: when the
   * coordinator first started on its database (economics/network-genesis.ts). At most the end of
   * year 9999, the last time an ISO 8601 date of four digits names.
   */
  genesisAtMs: z.number().int().min(0).max(253_402_300_799_999).optional(),
  /** Price oracle: TDM smallest units per US dollar (default 2 TDM = 1 USD). */
  tdmPerUsdUnits: z.bigint().positive().default(2_000_000n),
  maxLogLinesPerCluster: z.number().int().min(100).default(200_000),
  /** Most job output stored per rank, bytes (a line counts its text plus 32). */
  maxLogBytesPerRank: z
    .number()
    .int()
    .min(64 * 1024)
    .default(64 * 1024 * 1024),
  /**
   * The Solana rail (issue 17), off when absent: deposits of SPL USDC and TDM into per-account
   * addresses, credited at `commitment`. The treasury key is read from `treasuryKeyFile` or the
   * `TANDEM_SOLANA_TREASURY_KEY` environment variable (never a command-line argument).
   */
  solana: z
    .strictObject({
      rpcUrl: z.url({ protocol: /^https?$/ }),
      mints: z.strictObject({
        USDC: z.string().min(32).max(44).optional(),
        TDM: z.string().min(32).max(44).optional(),
      }),
      treasuryKeyFile: z.string().min(1).optional(),
      commitment: z.enum(["confirmed", "finalized"]).default("finalized"),
      /** Smallest credited deposit, units (0.01 by default); smaller ones are recorded, refused. */
      minimumUnits: z.number().int().min(1).default(10_000),
      pollMs: z.number().int().min(100).default(10_000),
    })
    .optional(),
  /** Lets any user credit its own wallet (`tandem dev` turns it on); off everywhere else. */
  faucet: z.boolean().default(false),
  /** Fee rates in basis points (DESIGN §6); TDM pays no payment fee. */
  /** `catalog`: one price per GPU model (DESIGN §6); `market`: suppliers price their own nodes. */
  pricingMode: z.enum(["catalog", "market"]).default("catalog"),
  fees: z
    .strictObject({
      reservationBps: z.number().int().min(0).max(10_000).default(25),
      paymentBps: z.number().int().min(0).max(10_000).default(200),
      burnBps: z.number().int().min(0).max(10_000).default(50),
    })
    .prefault({}),
  /** Staked TDM (economics/stakes.ts); amounts in TDM smallest units. */
  stake: z
    .strictObject({
      /** Per GPU of a data-center model: 1,000 TDM. */
      minPerDatacenterGpuUnits: z.bigint().min(0n).default(1_000_000_000n),
      /** Per GPU of a consumer or workstation model: 100 TDM. */
      minPerConsumerGpuUnits: z.bigint().min(0n).default(100_000_000n),
      /** Per CPU-only node: 10 TDM. */
      minPerCpuNodeUnits: z.bigint().min(0n).default(10_000_000n),
      /** The smallest position one may open: 1 TDM. */
      minStakeUnits: z.bigint().min(1n).default(1_000_000n),
      /** How long unstaked TDM stays slashable before it can be withdrawn: 14 days. */
      cooldownMs: z
        .number()
        .int()
        .min(0)
        .default(14 * 24 * 3_600_000),
      /** A node's commission on its rewards until its owner sets one: 10 %. */
      defaultCommissionBps: z.number().int().min(0).max(10_000).default(1_000),
    })
    .prefault({}),
  /** How often cached uptime figures are recomputed, ms. */
  uptimeRefreshMs: z.number().int().min(1000).default(60_000),
  /** How often the leader looks for finished hours without a reward block, ms. */
  rewardBlockCheckMs: z.number().int().min(100).default(60_000),
  logLevel: z.enum(["fatal", "error", "warn", "info", "debug", "trace", "silent"]).default("info"),
});
export type CoordinatorConfig = z.infer<typeof CoordinatorConfig>;

/**
 * Proofs small enough for `tandem dev` and in-process test coordinators: their workers prove on
 * this machine's CPU (GPUs through a fixture prover that reports the claimed card's time), so a
 * GPU's product is one leaf wide (256×256, k 256) and a core's 16×16 (k 512), answered in
 * milliseconds; a core's reference rate is set low (1 MFLOPS) and the allowance for start-up and
 * round trips high (20 s: a worker's first proof starts a thread per core, each loading the
 * TypeScript it runs, seconds on a loaded 2-core machine with several workers starting), so a
 * loaded machine still proves. Production keeps the defaults (DEFAULT_PROOF_POLICY).
 */
export const SMALL_PROOF_POLICY = {
  gpuTargetMs: 0.0001,
  gpuK: 256,
  cpuN: 16,
  cpuK: 512,
  cpuCoreGflops: 0.001,
  overheadMs: 20_000,
} as const;
export type CoordinatorConfigInput = z.input<typeof CoordinatorConfig>;

/** The price oracle's quotes, units of each currency per US dollar: USDC and USD at par. */
export function oracleRates(config: Pick<CoordinatorConfig, "tdmPerUsdUnits">) {
  return { USD: 1_000_000n, USDC: 1_000_000n, TDM: config.tdmPerUsdUnits } as const;
}

export function parseCoordinatorConfig(input: CoordinatorConfigInput): CoordinatorConfig {
  const parsed = CoordinatorConfig.safeParse(input);
  if (!parsed.success) {
    const problems = parsed.error.issues.map((i) => `${i.path.join(".")}: ${i.message}`).join("; ");
    throw new Error(`invalid coordinator config: ${problems}`);
  }
  const { leaderLeaseMs, leaderPollMs } = parsed.data;
  if (leaderLeaseMs < 2 * leaderPollMs)
    throw new Error(
      `invalid coordinator config: leaderLeaseMs: ${leaderLeaseMs} is under twice leaderPollMs (${leaderPollMs}): a live leader would lose the lead between two of its polls`,
    );
  return parsed.data;
}

export function sqlitePathOf(config: CoordinatorConfig): string {
  return config.sqlitePath ?? join(config.home, "coordinator.db");
}

function isAddressOrCidr(value: string): boolean {
  const [address = "", bits, ...rest] = value.split("/");
  const family = isIP(address);
  if (family === 0 || rest.length > 0) return false;
  if (bits === undefined) return true;
  return /^\d{1,3}$/.test(bits) && Number(bits) <= (family === 4 ? 32 : 128);
}
