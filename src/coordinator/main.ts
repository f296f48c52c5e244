import { mkdir, writeFile } from "node:fs/promises";
import { join } from "node:path";
import pino from "pino";
import type { Clock } from "../core/clock.ts";
import { NODE_STATUSES, isOnline } from "../core/node-status.ts";
import { buildApi, type ZodApp } from "./api/server.ts";
import {
  oracleRates,
  parseCoordinatorConfig,
  sqlitePathOf,
  type CoordinatorConfigInput,
} from "./config.ts";
import { CoordinatorEvents } from "./events.ts";
import { WorkerGateway } from "./gateway/worker-gateway.ts";
import { SpotChecks } from "./verification/spot-checks.ts";
import { createMetrics } from "./metrics.ts";
import { AccountRegistry } from "./registry/accounts.ts";
import { DeviceRegistry } from "./registry/devices.ts";
import { EnrollmentTokens } from "./registry/enrollment-tokens.ts";
import { MarketPrices } from "./registry/market-prices.ts";
import { NodeLifecycle } from "./registry/node-lifecycle.ts";
import { NetworkCounts } from "./registry/network-counts.ts";
import { UsageReader } from "./registry/network-usage.ts";
import { LeaderLoop } from "./replicas/leader-loop.ts";
import { NodeQueries } from "./registry/node-queries.ts";
import { openStore, readPasswordFile, type Store } from "./store/database.ts";
import { toNumberOrNull } from "./store/rows.ts";
import { DEFAULT_FEE_SCHEDULE } from "../core/fees.ts";
import { DEFAULT_CATALOG_PRICES } from "../core/pricing.ts";
import { Billing } from "./billing/billing.ts";
import { Ledger } from "./billing/ledger.ts";
import { networkGenesisAt } from "./economics/network-genesis.ts";
import { ManualRail } from "./billing/payment-rail.ts";
import { startSolanaRail } from "./billing/solana/rail.ts";
import { WalletService } from "./billing/wallet.ts";
import { StakeService, stakeOptionsOf } from "./economics/stakes.ts";
import { ensureGenesis } from "./economics/supply.ts";
import { rewardBlockLoop } from "./economics/reward-block-loop.ts";
import { TokenFigures } from "./economics/token-figures.ts";
import { billingPayments } from "./scheduler/billing-payments.ts";
import { Inventory } from "./scheduler/inventory.ts";
import { Autoscaler } from "./scheduler/autoscaler.ts";
import { ClusterEnds } from "./scheduler/cluster-ends.ts";
import { OverlayExchange } from "./scheduler/cluster-network.ts";
import { ClusterQueue } from "./scheduler/cluster-queue.ts";
import { Deployments } from "./scheduler/deployments.ts";
import { Drains } from "./scheduler/drains.ts";
import { Failover } from "./scheduler/failover.ts";
import { JobMessageRouter } from "./scheduler/job-messages.ts";
import { DEFAULT_LOG_WRITER_OPTIONS, LogWriter } from "./scheduler/log-writer.ts";
import { Offers } from "./scheduler/offers.ts";
import { RankMoves } from "./scheduler/rank-moves.ts";
import { Rendezvous } from "./scheduler/rendezvous.ts";
import { LeaseSettler } from "./scheduler/settlement.ts";
import { SchedulerTicker } from "./scheduler/ticker.ts";
import { loadTlsFiles } from "./tls.ts";
import type { Leadership } from "./replicas/leader-election.ts";
import { coordinationOf } from "./replicas/coordination.ts";
import { IdPrefix, newId } from "../protocol/ids.ts";
import { Replicas } from "./replicas/replicas.ts";
import type { WorkerChannel } from "./scheduler/worker-channel.ts";

export const VERSION = "0.1.0";

export interface Coordinator {
  /**
   * The base URL it listens on, e.g. http://127.0.0.1:7400 (https with TLS; on 0.0.0.0, the first
   * local address).
   */
  readonly url: string;
  readonly app: ZodApp;
  readonly store: Store;
  readonly accounts: AccountRegistry;
  /** Suppliers' enrollment tokens (`tandem dev` makes its workers' tokens in process). */
  readonly enrollment: EnrollmentTokens;
  readonly lifecycle: NodeLifecycle;
  readonly gateway: WorkerGateway;
  /** The scheduler's clock (tests tick it by hand). */
  readonly ticker: SchedulerTicker;
  /** Whether this replica leads the singleton loops (always, on SQLite). */
  readonly leadership: Leadership;
  /** Job output as stored (tests wait for it). */
  readonly logs: LogWriter;
  readonly billing: Billing;
  /** The admin key, when this start created the first admin account (also in `<home>/admin.key`). */
  readonly createdAdminKey: string | undefined;
  close(): Promise<void>;
}

const systemClock: Clock = { now: () => Date.now() };

/** The composition root: builds every subsystem, hands each exactly the peers it needs, listens. */
export async function startCoordinator(
  input: CoordinatorConfigInput,
  options: { clock?: Clock } = {},
): Promise<Coordinator> {
  const config = parseCoordinatorConfig(input);
  const clock = options.clock ?? systemClock;
  const replicaId = newId(IdPrefix.replica, clock.now());
  const logger = pino({
    level: config.logLevel,
    base: { service: "coordinator", replica: replicaId },
  });
  const tls = await loadTlsFiles(config.tlsCertFile, config.tlsKeyFile);
  await mkdir(config.home, { recursive: true, mode: 0o700 });
  const store = await openStore(
    config.databaseUrl === undefined
      ? { kind: "sqlite", path: sqlitePathOf(config) }
      : {
          kind: "postgres",
          url: config.databaseUrl,
          password: await readPasswordFile(config.databasePasswordFile),
        },
    {
      onConnectionError: (error) =>
        logger.warn({ err: error }, "database connection lost; reconnecting"),
      sqliteBusyWaitMs: config.sqliteBusyWaitMs,
    },
  );

  const { leadership, clusterLocks } = coordinationOf(
    replicaId,
    { newSession: store.newSession, clock, logger },
    config,
  );
  const events = new CoordinatorEvents();
  const accounts = new AccountRegistry(store.db);
  const lifecycle = new NodeLifecycle(store.db, events);
  const devices = new DeviceRegistry(store.db, events);
  const enrollment = new EnrollmentTokens(store.db);
  const networkCounts = new NetworkCounts(store.db, events, {
    onError: (error) => logger.warn({ err: error }, "network counts: recount failed"),
  });
  const nodes = new NodeQueries(store.db, networkCounts, {
    prices: DEFAULT_CATALOG_PRICES,
    mode: config.pricingMode,
  });
  const marketPrices = new MarketPrices(store.db, events);
  // Stored node prices follow this start's pricing before anything reads them (one read if same).
  await nodes.preparePricing();
  const usage = new UsageReader(store.db, store.dialect, clock, (error) =>
    logger.warn({ err: error }, "metrics: usage query failed"),
  );
  const metrics = createMetrics({
    supply: () => networkCounts.snapshot(),
    usage: () => usage.read(),
  });
  const gateway = new WorkerGateway(
    { clock, devices, lifecycle, events, metrics, logger },
    {
      heartbeatIntervalMs: config.heartbeatIntervalMs,
      missedHeartbeats: config.missedHeartbeats,
      authTimeoutMs: config.authTimeoutMs,
      maxUnauthenticatedPerAddress: config.maxUnauthenticatedPerAddress,
      maxUnauthenticated: config.maxUnauthenticated,
      proofPolicy: config.proof,
      sweepIntervalMs: config.livenessSweepMs,
      restartGraceMs: config.restartGraceMs,
    },
  );

  const ledger = new Ledger(store.dialect);
  const fees = { ...DEFAULT_FEE_SCHEDULE, ...config.fees };
  const rates = oracleRates(config);
  const billing = new Billing(store.db, ledger, fees, rates);
  const wallet = new WalletService(store.db, ledger, new ManualRail());
  // The Solana rail (issue 17) when configured: deposit addresses, and the watcher on the leader.
  const solana = startSolanaRail(config.solana, {
    db: store.db,
    ledger,
    clock,
    leadership,
    logger,
  });
  const stakeOptions = stakeOptionsOf(config);
  const stakes = new StakeService(store.db, ledger, events, stakeOptions);
  const tokenFigures = new TokenFigures(store.db, events, clock, 2_000, (error) =>
    logger.warn({ err: error }, "token figures: read failed"),
  );
  await ensureGenesis(store.db, ledger, clock.now());
  // Replicas on one PostgreSQL reach workers held by another replica through it (DESIGN.md §7).
  const replicas: Replicas | undefined =
    store.newSession === undefined
      ? undefined
      : new Replicas(
          replicaId,
          {
            db: store.db,
            clock,
            logger,
            newSession: store.newSession,
            gateway,
            leadership,
            events,
            nodeChanged: [
              (nodeId: string): void => inventory.refreshInBackground(nodeId),
              (): void => networkCounts.requestRecount(),
            ],
          },
          { aliveEveryMs: config.replicaAliveMs, deadAfterMs: config.replicaDeadAfterMs },
        );
  const workers: WorkerChannel = replicas?.channel ?? gateway;
  const inventory: Inventory = new Inventory(
    store.db,
    DEFAULT_CATALOG_PRICES,
    config.pricingMode,
    events,
    (error, nodeId) => logger.warn({ err: error, nodeId }, "inventory refresh failed"),
    (nodeId) => workers.awaitingContact(nodeId),
    (nodeId) => workers.behindNat(nodeId),
  );
  // The scheduler's systems (DESIGN.md §5.5–5.8), each handed the peers it works with.
  const resources = {
    db: store.db,
    clock,
    inventory,
    workers,
    payments: billingPayments(billing),
    events,
    logger,
  };
  const reservationTtlMs = config.reservationTtlMs;
  const queue = new ClusterQueue(clusterLocks);
  const logs = new LogWriter(resources, {
    ...DEFAULT_LOG_WRITER_OPTIONS,
    maxLinesPerCluster: config.maxLogLinesPerCluster,
    ...(config.maxLogBytesPerRank === undefined
      ? {}
      : { maxBytesPerRank: config.maxLogBytesPerRank }),
  });
  const offers = new Offers(resources, {
    rates,
    standbyPricePercent: config.standbyPricePercent,
    jobNetworks: config.jobNetworks,
  });
  const overlays = new OverlayExchange(resources);
  const settler = new LeaseSettler(resources, queue);
  const ends = new ClusterEnds(resources, queue, settler, overlays);
  const autoscaler = new Autoscaler(
    resources,
    {
      reservationTtlMs,
      idleReleaseMs: config.scaleDownIdleMs,
      maxTasksPerRun: config.maxTasksPerRun,
    },
    settler,
    offers,
  );
  const rendezvous = new Rendezvous(resources, queue, autoscaler);
  const moves = new RankMoves(resources, { reservationTtlMs }, rendezvous);
  const failover = new Failover(resources, queue, settler, offers, moves, autoscaler, ends);
  const drains = new Drains(resources, queue, failover);
  const deployments = new Deployments(
    resources,
    { reservationTtlMs },
    queue,
    offers,
    autoscaler,
    rendezvous,
  );
  const jobMessages = new JobMessageRouter(
    resources,
    queue,
    logs,
    rendezvous,
    overlays,
    failover,
    moves,
    drains,
    autoscaler,
    ends,
  );
  const ticker = new SchedulerTicker(
    resources,
    { tickMs: config.schedulerTickMs, reservationTtlMs },
    queue,
    settler,
    failover,
    autoscaler,
    ends,
    leadership,
  );
  gateway.onJobMessage((nodeId, message) => jobMessages.onJobMessage(nodeId, message));
  gateway.onWorkerConnected(async (nodeId) => {
    await replicas?.held(nodeId);
    // A node restored at start becomes rentable once heard from (its status may not change).
    inventory.refreshInBackground(nodeId);
    return rendezvous.resendStarts(nodeId);
  });

  const admin = await accounts.bootstrapAdmin(clock.now());
  if (admin !== undefined) {
    await writeFile(join(config.home, "admin.key"), admin.apiKey + "\n", { mode: 0o600 });
    logger.info({ path: join(config.home, "admin.key") }, "created the first admin account");
  }
  const genesisAtMs = await networkGenesisAt(store.db, config.genesisAtMs, clock.now());
  const app = await buildApi(
    {
      config: {
        openSignup: config.openSignup,
        bodyLimitBytes: config.bodyLimitBytes,
        rateLimitPerMinute: config.rateLimitPerMinute,
        database: store.dialect,
        faucet: config.faucet,
        pricingMode: config.pricingMode,
        genesisAtMs,
        tls,
        trustProxy: config.trustProxy,
      },
      version: VERSION,
      clock,
      accounts,
      devices,
      enrollment,
      nodes,
      gateway,
      metrics,
      events,
      offers,
      deployments,
      ends,
      billing,
      wallet,
      stakes,
      tokenFigures,
      depositAddresses: solana?.addresses,
      marketPrices,
      leadership,
      db: store.db,
    },
    logger,
  );

  const stillOnline = await store.db
    .selectFrom("nodes")
    .select(["id", "last_seen_at"])
    .where("status", "in", NODE_STATUSES.filter(isOnline))
    .execute();
  await networkCounts.start();
  await replicas?.start();
  // Every node online is watched here as after a restart, but for those of replicas already heard
  // alive; those of replicas heard later are left to them then (replicas/replicas.ts).
  gateway.start(
    stillOnline
      .filter((n) => replicas?.directory.elsewhere(n.id) === undefined)
      .map((n) => ({ nodeId: n.id, lastSeenMs: toNumberOrNull(n.last_seen_at) })),
  );
  await inventory.load();
  await rendezvous.restore();
  await leadership.start();
  ticker.start();
  const spotChecks = new SpotChecks(
    { db: store.db, clock, starter: gateway, events, logger, random: Math.random },
    { intervalMs: config.proofIntervalMs },
  );
  spotChecks.start();
  const uptime = new LeaderLoop(
    "uptime refresh",
    (stopping) => lifecycle.refreshAllUptime(clock.now(), stopping),
    { leadership, logger },
    config.uptimeRefreshMs,
  );
  uptime.start();
  const rewardBlocks = rewardBlockLoop(
    { db: store.db, ledger, events, clock, leadership, logger },
    { genesisAtMs, stake: stakeOptions, everyMs: config.rewardBlockCheckMs },
  );
  rewardBlocks.start({ now: true });

  const address = await app.listen({ host: config.host, port: config.port });
  logger.info({ address, database: store.dialect }, "coordinator listening");

  let closing: Promise<void> | undefined;
  return {
    url: address,
    app,
    store,
    accounts,
    enrollment,
    lifecycle,
    gateway,
    ticker,
    leadership,
    logs,
    billing,
    createdAdminKey: admin?.apiKey,
    close() {
      closing ??= (async () => {
        await uptime.stop();
        await solana?.watcher.stop();
        await rewardBlocks.stop();
        await gateway
          .flushLastSeen()
          .catch((error: unknown) => logger.error({ err: error }, "last-seen flush failed"));
        await spotChecks.stop();
        gateway.stop();
        await ticker.stop();
        await replicas?.close();
        await leadership.close();
        await logs.idle();
        await app.close();
        await queue.idle();
        await clusterLocks.close();
        await networkCounts.stop();
        await store.close();
        logger.info("coordinator stopped");
      })();
      return closing;
    },
  };
}
