import type { Command } from "commander";
import { tandemHome } from "../context.ts";
import { parseIntOption, withJson } from "./common.ts";
import { untilSignal } from "./signals.ts";

interface CoordinatorOptions {
  host: string;
  port: number;
  tlsCert?: string;
  tlsKey?: string;
  trustProxy?: string;
  databaseUrl?: string;
  databasePasswordFile?: string;
  closedSignup?: boolean;
  pricingMode: "catalog" | "market";
  jobNetworks: "required" | "optional";
  heartbeatIntervalMs?: number;
  missedHeartbeats?: number;
  proofGpuTargetMs?: number;
  proofGpuK?: number;
  proofCpuWork?: { n: number; k: number };
  proofCpuCoreGflops?: number;
  proofIntervalMs?: number;
  proofOverheadMs?: number;
  genesisAt?: number;
  leaderPollMs?: number;
  leaderLeaseMs?: number;
  stakeCooldownMs?: number;
  solanaRpcUrl?: string;
  solanaUsdcMint?: string;
  solanaTdmMint?: string;
  solanaTreasuryKeyFile?: string;
  logLevel: "fatal" | "error" | "warn" | "info" | "debug" | "trace" | "silent";
  json?: boolean;
}

const PLAIN_HTTP_WARNING =
  "warning: plain http on an address other machines reach: their workers refuse it without " +
  "--insecure. Give --tls-cert and --tls-key, or serve on 127.0.0.1 behind a TLS proxy " +
  '(README, "Connect a machine").\n';

export function registerCoordinatorCommand(program: Command): void {
  withJson(
    program
      .command("coordinator")
      .description("run the coordinator: REST API, worker gateway, explorer"),
  )
    .option(
      "--host <host>",
      "address to listen on (0.0.0.0: every address, for workers on other machines)",
      "127.0.0.1",
    )
    .option(
      "--port <port>",
      "port to listen on (API and worker channel)",
      parseIntOption("--port"),
      7400,
    )
    .option("--tls-cert <file>", "PEM certificate (chain): serve https and wss (with --tls-key)")
    .option("--tls-key <file>", "PEM private key of --tls-cert")
    .option(
      "--trust-proxy <addresses>",
      "reverse proxies (IPs/CIDRs, comma-separated) whose X-Forwarded-For names the client",
    )
    .option(
      "--database-url <url>",
      "PostgreSQL URL (default: SQLite in $TANDEM_HOME/coordinator.db)",
    )
    .option(
      "--database-password-file <path>",
      "file holding the PostgreSQL password, for a --database-url without one (or set PGPASSWORD)",
    )
    .option(
      "--solana-rpc-url <url>",
      "turn the Solana rail on: deposits of SPL USDC and TDM, read from this RPC node",
    )
    .option("--solana-usdc-mint <address>", "the USDC mint the Solana rail takes")
    .option("--solana-tdm-mint <address>", "the TDM mint the Solana rail takes")
    .option(
      "--solana-treasury-key-file <path>",
      "the treasury keypair (solana-keygen JSON); default $TANDEM_SOLANA_TREASURY_KEY",
    )
    .option("--closed-signup", "only admins may create accounts")
    .option(
      "--pricing-mode <mode>",
      "catalog (one price per GPU model) | market (suppliers set prices)",
      "catalog",
    )
    .option(
      "--job-networks <policy>",
      "required (every rank in its own network namespace, clusters on their overlay) | optional (nodes that cannot isolate run ranks on the host's network)",
      "required",
    )
    .option(
      "--heartbeat-interval-ms <ms>",
      "worker heartbeat interval",
      parseIntOption("--heartbeat-interval-ms"),
    )
    .option(
      "--missed-heartbeats <n>",
      "missed heartbeats before a node is offline",
      parseIntOption("--missed-heartbeats"),
    )
    .option(
      "--stake-cooldown-ms <ms>",
      "how long unstaked TDM stays slashable before it can be withdrawn (default 14 days)",
      parseIntOption("--stake-cooldown-ms"),
    )
    .option(
      "--proof-gpu-target-ms <ms>",
      "proof of hardware: a GPU's work at its model's peak, ms (default 5000)",
      parsePositive("--proof-gpu-target-ms"),
    )
    .option(
      "--proof-gpu-k <k>",
      "proof of hardware: inner dimension of a GPU's product (default 65536)",
      parseIntOption("--proof-gpu-k"),
    )
    .option(
      "--proof-cpu-work <n>x<k>",
      "proof of hardware: one CPU core's product, side x inner dimension (default 64x8192)",
      parseProofWork,
    )
    .option(
      "--proof-cpu-core-gflops <g>",
      "proof of hardware: a CPU core's reference rate; half of it is the least a core must show (default 0.25)",
      parsePositive("--proof-cpu-core-gflops"),
    )
    .option(
      "--proof-overhead-ms <ms>",
      "proof of hardware: time allowed beyond the work itself for start-up and round trips (default 3000)",
      parseIntOption("--proof-overhead-ms"),
    )
    .option(
      "--proof-interval-ms <ms>",
      "proof of hardware: the longest an idle node goes unproven; spot checks come at random in its second half (default 3600000)",
      parseIntOption("--proof-interval-ms"),
    )
    .option(
      "--leader-poll-ms <ms>",
      "replicas on one PostgreSQL: how often a follower tries to take the lead of settlement and expiry (default 500)",
      parseIntOption("--leader-poll-ms"),
    )
    .option(
      "--leader-lease-ms <ms>",
      "replicas on one PostgreSQL: a leader silent this long loses the lead (default 10000)",
      parseIntOption("--leader-lease-ms"),
    )
    .option(
      "--genesis-at <time>",
      "the network's genesis, when TDM emission begins: an ISO 8601 UTC time such as 2026-01-01T00:00:00Z (default: this database's first start)",
      parseGenesisAt,
    )
    .option(
      "--log-level <level>",
      "fatal | error | warn | info | debug | trace | silent (debug adds a line per request)",
      "info",
    )
    .action(async (options: CoordinatorOptions) => {
      const { startCoordinator } = await import("../../coordinator/main.ts");
      const { isLoopbackHost } = await import("../../worker/coordinator-trust.ts");
      const home = tandemHome();
      const coordinator = await startCoordinator({
        home,
        host: options.host,
        port: options.port,
        ...(options.tlsCert === undefined ? {} : { tlsCertFile: options.tlsCert }),
        ...(options.tlsKey === undefined ? {} : { tlsKeyFile: options.tlsKey }),
        ...(options.trustProxy === undefined ? {} : { trustProxy: options.trustProxy }),
        openSignup: !options.closedSignup,
        ...solanaConfigOf(options),
        pricingMode: options.pricingMode,
        jobNetworks: options.jobNetworks,
        logLevel: options.logLevel,
        ...(options.databaseUrl === undefined ? {} : { databaseUrl: options.databaseUrl }),
        ...(options.databasePasswordFile === undefined
          ? {}
          : { databasePasswordFile: options.databasePasswordFile }),
        ...(options.heartbeatIntervalMs === undefined
          ? {}
          : { heartbeatIntervalMs: options.heartbeatIntervalMs }),
        ...(options.missedHeartbeats === undefined
          ? {}
          : { missedHeartbeats: options.missedHeartbeats }),
        ...(options.proofIntervalMs === undefined
          ? {}
          : { proofIntervalMs: options.proofIntervalMs }),
        ...(options.genesisAt === undefined ? {} : { genesisAtMs: options.genesisAt }),
        ...(options.leaderPollMs === undefined ? {} : { leaderPollMs: options.leaderPollMs }),
        ...(options.leaderLeaseMs === undefined ? {} : { leaderLeaseMs: options.leaderLeaseMs }),
        ...(options.stakeCooldownMs === undefined
          ? {}
          : { stake: { cooldownMs: options.stakeCooldownMs } }),
        proof: {
          ...(options.proofGpuTargetMs === undefined
            ? {}
            : { gpuTargetMs: options.proofGpuTargetMs }),
          ...(options.proofGpuK === undefined ? {} : { gpuK: options.proofGpuK }),
          ...(options.proofCpuWork === undefined
            ? {}
            : { cpuN: options.proofCpuWork.n, cpuK: options.proofCpuWork.k }),
          ...(options.proofCpuCoreGflops === undefined
            ? {}
            : { cpuCoreGflops: options.proofCpuCoreGflops }),
          ...(options.proofOverheadMs === undefined ? {} : { overheadMs: options.proofOverheadMs }),
        },
      });
      const ready = {
        url: coordinator.url,
        listen: listenAddress(options.host, coordinator.url),
        home,
        adminKeyFile: coordinator.createdAdminKey === undefined ? null : `${home}/admin.key`,
      };
      process.stdout.write(
        options.json
          ? JSON.stringify(ready) + "\n"
          : `coordinator listening on ${listeningOn(options.host, coordinator.url)}\n`,
      );
      if (coordinator.url.startsWith("http:") && !isLoopbackHost(options.host))
        process.stderr.write(PLAIN_HTTP_WARNING);
      await untilSignal();
      await coordinator.close();
    });
}

/** Where a coordinator listens, as `host:port` with the port it got (`--port 0` picks one). */
export function listenAddress(host: string, url: string): string {
  const { port } = new URL(url);
  return `${host.includes(":") ? `[${host}]` : host}:${port}`;
}

/**
 * Its URL, and on a wildcard host (0.0.0.0, ::) that the other addresses of this machine answer
 * too: the URL names the first local one, which other machines may not reach.
 */
export function listeningOn(host: string, url: string): string {
  if (host !== "0.0.0.0" && host !== "::") return url;
  return `${url} and every other address of this machine (${listenAddress(host, url)})`;
}

function parsePositive(name: string) {
  return (value: string): number => {
    const n = Number(value);
    if (value.trim() === "" || !Number.isFinite(n) || n <= 0)
      throw new Error(`${name} must be a positive number, got "${value}"`);
    return n;
  };
}

/** An ISO 8601 UTC time (`Z`), from 1970 to 9999, as ms since the epoch. */
function parseGenesisAt(value: string): number {
  const ms = /^\d{4}-\d\d-\d\dT\d\d:\d\d(:\d\d(\.\d{1,3})?)?Z$/.test(value)
    ? Date.parse(value)
    : NaN;
  if (
    !Number.isFinite(ms) ||
    ms < 0 ||
    new Date(ms).toISOString().slice(0, 16) !== value.slice(0, 16)
  )
    throw new Error(`--genesis-at must be a UTC time such as 2026-01-01T00:00:00Z, got "${value}"`);
  return ms;
}

/** `<n>x<k>`: a proof's side and inner dimension, e.g. 64x8192. */
function parseProofWork(value: string): { n: number; k: number } {
  const match = /^(\d+)x(\d+)$/.exec(value);
  if (match === null || Number(match[1]) < 1 || Number(match[2]) < 1)
    throw new Error(`--proof-cpu-work must be <n>x<k> (e.g. 64x8192), got "${value}"`);
  return { n: Number(match[1]), k: Number(match[2]) };
}

/** The `solana` config from the `--solana-*` flags: the rail is on only with an RPC URL. */
function solanaConfigOf(options: CoordinatorOptions) {
  if (options.solanaRpcUrl === undefined) return {};
  return {
    solana: {
      rpcUrl: options.solanaRpcUrl,
      mints: {
        ...(options.solanaUsdcMint === undefined ? {} : { USDC: options.solanaUsdcMint }),
        ...(options.solanaTdmMint === undefined ? {} : { TDM: options.solanaTdmMint }),
      },
      ...(options.solanaTreasuryKeyFile === undefined
        ? {}
        : { treasuryKeyFile: options.solanaTreasuryKeyFile }),
    },
  };
}
