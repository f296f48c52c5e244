import type { z } from "zod";
import type { ApiKeyListQuery, CreateAccountRequest } from "../protocol/accounts.ts";
import type { PutSecretsRequest } from "../protocol/cluster-secrets.ts";
import type {
  ClusterListQuery,
  DeployRequest,
  QuoteRequest,
  SearchRequest,
  TaskListQuery,
} from "../protocol/clusters.ts";
import type { RegisterDeviceRequest } from "../protocol/devices.ts";
import type { EnrollmentTokenListQuery } from "../protocol/enrollment.ts";
import type { PublicClustersQuery } from "../protocol/network.ts";
import type { ListNodesQuery } from "../protocol/nodes.ts";
import type { StakeListQuery, StakeRequest } from "../protocol/stakes.ts";
import type { RewardBlockListQuery, RewardBlockQuery } from "../protocol/token.ts";
import type {
  DepositRequest,
  WalletTransactionsQuery,
  WithdrawalRequest,
} from "../protocol/wallet.ts";
import { fetchTransport, type HttpTransport } from "./transport.ts";

/**
 * The schemas of a protocol module, each read when a request first needs it: the module (and zod)
 * is imported on the first answer to parse, never at load. A short CLI command builds only the
 * schemas of the endpoints it calls (a fifth of `tandem nodes list` went into building every
 * endpoint's schemas at start: bench/cli-start); the bundles split each module into a chunk.
 */
function schemasIn<M>(load: () => Promise<M>) {
  return <K extends keyof M>(name: K) =>
    async (): Promise<M[K]> =>
      (await load())[name];
}

/** Where each answer's schema lives. */
const protocol = {
  accounts: schemasIn(() => import("../protocol/accounts.ts")),
  catalog: schemasIn(() => import("../protocol/catalog.ts")),
  clusterSecrets: schemasIn(() => import("../protocol/cluster-secrets.ts")),
  clusters: schemasIn(() => import("../protocol/clusters.ts")),
  devices: schemasIn(() => import("../protocol/devices.ts")),
  enrollment: schemasIn(() => import("../protocol/enrollment.ts")),
  network: schemasIn(() => import("../protocol/network.ts")),
  nodes: schemasIn(() => import("../protocol/nodes.ts")),
  stakes: schemasIn(() => import("../protocol/stakes.ts")),
  system: schemasIn(() => import("../protocol/system.ts")),
  token: schemasIn(() => import("../protocol/token.ts")),
  wallet: schemasIn(() => import("../protocol/wallet.ts")),
};

/** An error answer from the coordinator, with its stable code (see the API's error table). */
export class TandemApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly details?: Record<string, unknown>,
  ) {
    super(message);
    this.name = "TandemApiError";
  }
}

export interface TandemClientOptions {
  /** Coordinator base URL, e.g. http://127.0.0.1:7400. */
  baseUrl: string;
  apiKey?: string | undefined;
  /** Per-request timeout, ms (default 15000). */
  timeoutMs?: number;
  /** How requests travel (default `fetch`; the CLI's is node:http, node-transport.ts). */
  transport?: HttpTransport;
  /**
   * Parse answers without zod's compiled fast path (default false). A process that parses each
   * kind of answer once, the CLI, spends more compiling that path (`new Function` per object
   * schema) than it saves: 10-25 ms of `tandem nodes list` (bench/cli-start).
   */
  jitless?: boolean;
}

type Query = Record<string, string | number | undefined>;

/** A request path with each interpolated value URI-encoded: path`/v1/nodes/${id}`. */
function path(parts: TemplateStringsArray, ...values: string[]): string {
  return parts.reduce((joined, part, i) => joined + encodeURIComponent(values[i - 1]!) + part);
}

/** The typed REST client used by the CLI, the explorer and the tests. Answers are parsed with the protocol's zod schemas. */
export class TandemClient {
  private readonly parseContext: { jitless: boolean };

  constructor(private readonly options: TandemClientOptions) {
    this.parseContext = { jitless: options.jitless ?? false };
  }

  get baseUrl(): string {
    return this.options.baseUrl;
  }

  health() {
    return this.read("/v1/health", protocol.system("HealthResponse"));
  }

  createAccount(body: CreateAccountRequest) {
    return this.send("POST", "/v1/accounts", body, protocol.accounts("CreateAccountResponse"));
  }

  me() {
    return this.read("/v1/accounts/me", protocol.accounts("AccountView"));
  }

  createApiKey() {
    return this.send("POST", "/v1/api-keys", undefined, protocol.accounts("CreateApiKeyResponse"));
  }

  listApiKeys(query: ApiKeyListQuery = {}) {
    return this.read("/v1/api-keys", protocol.accounts("ApiKeyList"), query as Query);
  }

  revokeApiKey(id: string) {
    return this.send("POST", path`/v1/api-keys/${id}/revoke`, undefined, null);
  }

  listNodes(query: ListNodesQuery = {}) {
    return this.read("/v1/nodes", protocol.nodes("NodeList"), query as Query);
  }

  getNode(id: string) {
    return this.read(path`/v1/nodes/${id}`, protocol.nodes("NodeView"));
  }

  nodeReputation(id: string) {
    return this.read(path`/v1/nodes/${id}/reputation`, protocol.nodes("ReputationBreakdown"));
  }

  nodeHistory(id: string, query: { limit?: number; cursor?: string } = {}) {
    return this.read(path`/v1/nodes/${id}/history`, protocol.nodes("HistoryList"), query);
  }

  /** A node's uptime per day over the last 30 days. */
  nodeUptime(id: string) {
    return this.read(path`/v1/nodes/${id}/uptime`, protocol.nodes("UptimeDays"));
  }

  /** What a node earned per currency, in all and over the last 30 days (from the ledger). */
  nodeEarnings(id: string) {
    return this.read(path`/v1/nodes/${id}/earnings`, protocol.nodes("NodeEarnings"));
  }

  networkStats() {
    return this.read("/v1/network/stats", protocol.nodes("NetworkStats"));
  }

  /** Clusters as the public sees them (no owner, command or logs), newest first. */
  networkClusters(query: PublicClustersQuery = {}) {
    return this.read("/v1/network/clusters", protocol.network("PublicClusterList"), query as Query);
  }

  networkPrices() {
    return this.read("/v1/network/prices", protocol.network("PriceBoard"));
  }

  networkRegions() {
    return this.read("/v1/network/regions", protocol.network("RegionBoard"));
  }

  networkCluster(id: string) {
    return this.read(path`/v1/network/clusters/${id}`, protocol.network("PublicCluster"));
  }

  /** The TDM emission schedule: the 20 years' totals and what the current hour emits. */
  tokenEmission() {
    return this.read("/v1/token/emission", protocol.token("EmissionView"));
  }

  /** TDM's supply: maximum, genesis, emitted, burned, total, staked, circulating. */
  tokenSupply() {
    return this.read("/v1/token", protocol.token("TokenView"));
  }

  /** Hourly reward blocks, newest first (`nextCursor` pages on to older ones). */
  rewardBlocks(query: RewardBlockListQuery = {}) {
    return this.read("/v1/token/blocks", protocol.token("RewardBlockList"), query);
  }

  /** One reward block and a page of its nodes: rewarded shares, refusals with their reason. */
  rewardBlock(hour: number, query: RewardBlockQuery = {}) {
    return this.read(
      path`/v1/token/blocks/${String(hour)}`,
      protocol.token("RewardBlockView"),
      query,
    );
  }

  /** What your account earned from reward blocks, per node and position. */
  rewards() {
    return this.read("/v1/rewards", protocol.token("AccountRewards"));
  }

  /** Stakes TDM from your wallet on a node. A fresh key per call unless given. */
  stake(body: StakeRequest, idempotencyKey: string = globalThis.crypto.randomUUID()) {
    return this.send("POST", "/v1/stakes", body, protocol.stakes("StakeView"), idempotencyKey);
  }

  stakes(query: StakeListQuery = {}) {
    return this.read("/v1/stakes", protocol.stakes("StakeList"), query);
  }

  /** Starts a position's cooldown. */
  unstake(id: string, idempotencyKey: string = globalThis.crypto.randomUUID()) {
    return this.send(
      "POST",
      path`/v1/stakes/${id}/unstake`,
      undefined,
      protocol.stakes("StakeView"),
      idempotencyKey,
    );
  }

  /** Pays a position back to your wallet once its cooldown is over. */
  withdrawStake(id: string, idempotencyKey: string = globalThis.crypto.randomUUID()) {
    return this.send(
      "POST",
      path`/v1/stakes/${id}/withdraw`,
      undefined,
      protocol.stakes("StakeView"),
      idempotencyKey,
    );
  }

  /** A node's public stake totals, minimum, eligibility and commission. */
  nodeStake(nodeId: string) {
    return this.read(path`/v1/nodes/${nodeId}/stake`, protocol.stakes("NodeStakeView"));
  }

  /** Sets your node's commission, percent ("10", "12.5"). */
  setCommission(nodeId: string, commissionPercent: string) {
    return this.send(
      "PUT",
      path`/v1/nodes/${nodeId}/commission`,
      { commissionPercent },
      protocol.stakes("NodeStakeView"),
    );
  }

  revokeDevice(id: string, reason?: string) {
    const body = reason === undefined ? {} : { reason };
    return this.send(
      "POST",
      path`/v1/devices/${id}/revoke`,
      body,
      protocol.devices("RevokeDeviceResponse"),
    );
  }

  registerDevice(body: RegisterDeviceRequest) {
    return this.send("POST", "/v1/devices", body, protocol.devices("RegisterDeviceResponse"));
  }

  /** A single-use token a worker machine enrolls with instead of this account's key (shown once). */
  createEnrollmentToken(ttlSeconds?: number) {
    const body = ttlSeconds === undefined ? {} : { ttlSeconds };
    return this.send(
      "POST",
      "/v1/enrollment-tokens",
      body,
      protocol.enrollment("EnrollmentTokenResponse"),
    );
  }

  listEnrollmentTokens(query: EnrollmentTokenListQuery = {}) {
    return this.read(
      "/v1/enrollment-tokens",
      protocol.enrollment("EnrollmentTokenList"),
      query as Query,
    );
  }

  setNodePrice(nodeId: string, pricePerHour: string) {
    return this.send("PUT", path`/v1/nodes/${nodeId}/price`, { pricePerHour }, null);
  }

  search(body: SearchRequest) {
    return this.send("POST", "/v1/search", body, protocol.clusters("SearchResponse"));
  }

  quote(body: QuoteRequest) {
    return this.send("POST", "/v1/quotes", body, protocol.wallet("QuoteView"));
  }

  deployCluster(body: DeployRequest, idempotencyKey?: string) {
    return this.send(
      "POST",
      "/v1/clusters",
      body,
      protocol.clusters("ClusterView"),
      idempotencyKey,
    );
  }

  /** The nodes a cluster's secrets are sealed to, with their device keys. */
  clusterSecrets(id: string) {
    return this.read(
      path`/v1/clusters/${id}/secrets`,
      protocol.clusterSecrets("ClusterSecretsView"),
    );
  }

  putClusterSecrets(id: string, body: PutSecretsRequest) {
    return this.send(
      "PUT",
      path`/v1/clusters/${id}/secrets`,
      body,
      protocol.clusterSecrets("ClusterSecretsView"),
    );
  }

  catalogGpus() {
    return this.read("/v1/catalog/gpus", protocol.catalog("CatalogGpus"));
  }

  catalogRegions() {
    return this.read("/v1/catalog/regions", protocol.catalog("CatalogRegions"));
  }

  /** A page of the caller's clusters, newest first (`nextCursor` null on the last). */
  listClusters(query: ClusterListQuery = {}) {
    return this.read("/v1/clusters", protocol.clusters("ClusterList"), query as Query);
  }

  getCluster(id: string) {
    return this.read(path`/v1/clusters/${id}`, protocol.clusters("ClusterView"));
  }

  terminateCluster(id: string) {
    return this.send(
      "DELETE",
      path`/v1/clusters/${id}`,
      undefined,
      protocol.clusters("ClusterView"),
    );
  }

  extendCluster(id: string, hours: number, idempotencyKey?: string) {
    return this.send(
      "POST",
      path`/v1/clusters/${id}/extend`,
      { hours },
      protocol.clusters("ClusterView"),
      idempotencyKey,
    );
  }

  submitTask(id: string, command: string[]) {
    return this.send(
      "POST",
      path`/v1/clusters/${id}/tasks`,
      { command },
      protocol.clusters("TaskView"),
    );
  }

  /** Queues many tasks in one request (at most MAX_TASKS_PER_SUBMIT), all or none. */
  submitTasks(id: string, commands: string[][]) {
    return this.send(
      "POST",
      path`/v1/clusters/${id}/tasks/batch`,
      { commands },
      protocol.clusters("TaskBatch"),
    );
  }

  clusterTasks(id: string, query: TaskListQuery = {}) {
    return this.read(path`/v1/clusters/${id}/tasks`, protocol.clusters("TaskList"), query as Query);
  }

  clusterLogs(id: string, query: { after?: number; rank?: number; limit?: number } = {}) {
    return this.read(path`/v1/clusters/${id}/logs`, protocol.clusters("LogPage"), query);
  }

  /** Credits a wallet (admin: any account; with the faucet on: your own). A fresh key per call unless given. */
  deposit(body: DepositRequest, idempotencyKey: string = globalThis.crypto.randomUUID()) {
    return this.send(
      "POST",
      "/v1/wallet/deposits",
      body,
      protocol.wallet("MoneyMovement"),
      idempotencyKey,
    );
  }

  withdraw(body: WithdrawalRequest, idempotencyKey: string = globalThis.crypto.randomUUID()) {
    return this.send(
      "POST",
      "/v1/wallet/withdrawals",
      body,
      protocol.wallet("MoneyMovement"),
      idempotencyKey,
    );
  }

  wallet(accountId?: string) {
    return this.read("/v1/wallet", protocol.wallet("WalletView"), { accountId });
  }

  walletTransactions(query: WalletTransactionsQuery = {}) {
    return this.read("/v1/wallet/transactions", protocol.wallet("WalletTransactionList"), query);
  }

  /** Where to send SPL tokens of `currency` to fund your wallet (the Solana rail). */
  depositAddress(currency: string) {
    return this.read("/v1/wallet/deposit-address", protocol.wallet("DepositAddressView"), {
      currency,
    });
  }

  /** The currency your earnings are paid in (null: each consumer's). */
  payoutCurrency() {
    return this.read("/v1/wallet/payout-currency", protocol.wallet("PayoutCurrencyView"));
  }

  /** Chooses the currency your earnings are paid in; null: the currency each consumer paid. */
  setPayoutCurrency(currency: string | null) {
    return this.send(
      "PUT",
      "/v1/wallet/payout-currency",
      { currency },
      protocol.wallet("PayoutCurrencyView"),
    );
  }

  clusterCosts(id: string) {
    return this.read(path`/v1/clusters/${id}/costs`, protocol.wallet("ClusterCostsView"));
  }

  ledgerAudit() {
    return this.read("/v1/admin/ledger-audit", protocol.wallet("LedgerAudit"));
  }

  private read<S extends z.ZodType>(path: string, schema: () => Promise<S>, query?: Query) {
    return this.request("GET", path, undefined, query, schema);
  }

  private send<S extends z.ZodType>(
    method: "POST" | "PUT" | "DELETE",
    path: string,
    body: unknown,
    schema: (() => Promise<S>) | null,
    idempotencyKey?: string,
  ) {
    return this.request(method, path, body, undefined, schema, idempotencyKey);
  }

  private async request<S extends z.ZodType>(
    method: "GET" | "POST" | "PUT" | "DELETE",
    path: string,
    body: unknown,
    query: Query | undefined,
    schema: (() => Promise<S>) | null,
    idempotencyKey?: string,
  ): Promise<z.infer<S>> {
    const url = new URL(path, this.options.baseUrl);
    for (const [key, value] of Object.entries(query ?? {})) {
      if (value !== undefined) url.searchParams.set(key, String(value));
    }
    const headers: Record<string, string> = {};
    if (body !== undefined) headers["content-type"] = "application/json";
    if (this.options.apiKey !== undefined) headers.authorization = `Bearer ${this.options.apiKey}`;
    if (idempotencyKey !== undefined) headers["idempotency-key"] = idempotencyKey;
    const transport = this.options.transport ?? fetchTransport;
    const answer = await transport({
      method,
      url,
      headers,
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
      timeoutMs: this.options.timeoutMs ?? 15_000,
    });
    const json: unknown = answer.text === "" ? undefined : JSON.parse(answer.text);
    if (answer.status < 200 || answer.status > 299) {
      const { ErrorBody } = await import("../protocol/errors.ts");
      const error = ErrorBody.safeParse(json, this.parseContext);
      if (error.success) {
        const { code, message, details } = error.data.error;
        throw new TandemApiError(answer.status, code, message, details);
      }
      throw new TandemApiError(
        answer.status,
        `HTTP_${answer.status}`,
        `HTTP ${answer.status} from ${path}`,
      );
    }
    // Without a schema (an answer the caller ignores) S is its constraint: z.infer gives unknown.
    return (schema === null ? json : (await schema()).parse(json, this.parseContext)) as z.infer<S>;
  }
}
