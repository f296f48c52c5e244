import type { z } from "zod";
import {
  AccountView,
  ApiKeyList,
  CreateAccountResponse,
  CreateApiKeyResponse,
  type CreateAccountRequest,
} from "../protocol/accounts.ts";
import { CatalogGpus, CatalogRegions } from "../protocol/catalog.ts";
import {
  ClusterList,
  type ClusterListQuery,
  ClusterView,
  LogPage,
  SearchResponse,
  TaskList,
  TaskBatch,
  TaskView,
  type DeployRequest,
  type QuoteRequest,
  type SearchRequest,
} from "../protocol/clusters.ts";
import {
  RegisterDeviceResponse,
  RevokeDeviceResponse,
  type RegisterDeviceRequest,
} from "../protocol/devices.ts";
import { EnrollmentTokenList, EnrollmentTokenResponse } from "../protocol/enrollment.ts";
import { ClusterSecretsView, type PutSecretsRequest } from "../protocol/cluster-secrets.ts";
import { ErrorBody } from "../protocol/errors.ts";
import {
  PriceBoard,
  PublicCluster,
  PublicClusterList,
  RegionBoard,
  type PublicClustersQuery,
} from "../protocol/network.ts";
import { HealthResponse } from "../protocol/system.ts";
import {
  NodeStakeView,
  StakeList,
  StakeView,
  type StakeListQuery,
  type StakeRequest,
} from "../protocol/stakes.ts";
import {
  AccountRewards,
  EmissionView,
  RewardBlockList,
  RewardBlockView,
  TokenView,
  type RewardBlockListQuery,
  type RewardBlockQuery,
} from "../protocol/token.ts";
import {
  ClusterCostsView,
  LedgerAudit,
  MoneyMovement,
  PayoutCurrencyView,
  QuoteView,
  WalletTransactionList,
  WalletView,
  type DepositRequest,
  type WalletTransactionsQuery,
  type WithdrawalRequest,
} from "../protocol/wallet.ts";
import {
  HistoryList,
  NetworkStats,
  NodeEarnings,
  NodeList,
  NodeView,
  ReputationBreakdown,
  UptimeDays,
  type ListNodesQuery,
} from "../protocol/nodes.ts";

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
}

type Query = Record<string, string | number | undefined>;

/** The typed REST client used by the CLI, the explorer and the tests. Answers are parsed with the protocol's zod schemas. */
export class TandemClient {
  constructor(private readonly options: TandemClientOptions) {}

  get baseUrl(): string {
    return this.options.baseUrl;
  }

  health() {
    return this.request("GET", "/v1/health", undefined, undefined, HealthResponse);
  }

  createAccount(body: CreateAccountRequest) {
    return this.request("POST", "/v1/accounts", body, undefined, CreateAccountResponse);
  }

  me() {
    return this.request("GET", "/v1/accounts/me", undefined, undefined, AccountView);
  }

  createApiKey() {
    return this.request("POST", "/v1/api-keys", undefined, undefined, CreateApiKeyResponse);
  }

  listApiKeys() {
    return this.request("GET", "/v1/api-keys", undefined, undefined, ApiKeyList);
  }

  revokeApiKey(id: string) {
    return this.request(
      "POST",
      `/v1/api-keys/${encodeURIComponent(id)}/revoke`,
      undefined,
      undefined,
      null,
    );
  }

  listNodes(query: ListNodesQuery = {}) {
    return this.request("GET", "/v1/nodes", undefined, query as Query, NodeList);
  }

  getNode(id: string) {
    return this.request(
      "GET",
      `/v1/nodes/${encodeURIComponent(id)}`,
      undefined,
      undefined,
      NodeView,
    );
  }

  nodeReputation(id: string) {
    return this.request(
      "GET",
      `/v1/nodes/${encodeURIComponent(id)}/reputation`,
      undefined,
      undefined,
      ReputationBreakdown,
    );
  }

  nodeHistory(id: string, query: { limit?: number; cursor?: string } = {}) {
    return this.request(
      "GET",
      `/v1/nodes/${encodeURIComponent(id)}/history`,
      undefined,
      query,
      HistoryList,
    );
  }

  /** A node's uptime per day over the last 30 days. */
  nodeUptime(id: string) {
    return this.request(
      "GET",
      `/v1/nodes/${encodeURIComponent(id)}/uptime`,
      undefined,
      undefined,
      UptimeDays,
    );
  }

  /** What a node earned per currency, in all and over the last 30 days (from the ledger). */
  nodeEarnings(id: string) {
    return this.request(
      "GET",
      `/v1/nodes/${encodeURIComponent(id)}/earnings`,
      undefined,
      undefined,
      NodeEarnings,
    );
  }

  networkStats() {
    return this.request("GET", "/v1/network/stats", undefined, undefined, NetworkStats);
  }

  /** Clusters as the public sees them (no owner, command or logs), newest first. */
  networkClusters(query: PublicClustersQuery = {}) {
    return this.request(
      "GET",
      "/v1/network/clusters",
      undefined,
      query as Query,
      PublicClusterList,
    );
  }

  networkPrices() {
    return this.request("GET", "/v1/network/prices", undefined, undefined, PriceBoard);
  }

  networkRegions() {
    return this.request("GET", "/v1/network/regions", undefined, undefined, RegionBoard);
  }

  networkCluster(id: string) {
    return this.request(
      "GET",
      `/v1/network/clusters/${encodeURIComponent(id)}`,
      undefined,
      undefined,
      PublicCluster,
    );
  }

  /** The TDM emission schedule: the 20 years' totals and what the current hour emits. */
  tokenEmission() {
    return this.request("GET", "/v1/token/emission", undefined, undefined, EmissionView);
  }

  /** TDM's supply: maximum, genesis, emitted, burned, total, staked, circulating. */
  tokenSupply() {
    return this.request("GET", "/v1/token", undefined, undefined, TokenView);
  }

  /** Hourly reward blocks, newest first (`nextCursor` pages on to older ones). */
  rewardBlocks(query: RewardBlockListQuery = {}) {
    return this.request("GET", "/v1/token/blocks", undefined, query, RewardBlockList);
  }

  /** One reward block and a page of its nodes: rewarded shares, refusals with their reason. */
  rewardBlock(hour: number, query: RewardBlockQuery = {}) {
    const path = `/v1/token/blocks/${encodeURIComponent(String(hour))}`;
    return this.request("GET", path, undefined, query, RewardBlockView);
  }

  /** What your account earned from reward blocks, per node and position. */
  rewards() {
    return this.request("GET", "/v1/rewards", undefined, undefined, AccountRewards);
  }

  /** Stakes TDM from your wallet on a node. A fresh key per call unless given. */
  stake(body: StakeRequest, idempotencyKey: string = globalThis.crypto.randomUUID()) {
    return this.request("POST", "/v1/stakes", body, undefined, StakeView, idempotencyKey);
  }

  stakes(query: StakeListQuery = {}) {
    return this.request("GET", "/v1/stakes", undefined, query, StakeList);
  }

  /** Starts a position's cooldown. */
  unstake(id: string, idempotencyKey: string = globalThis.crypto.randomUUID()) {
    const path = `/v1/stakes/${encodeURIComponent(id)}/unstake`;
    return this.request("POST", path, undefined, undefined, StakeView, idempotencyKey);
  }

  /** Pays a position back to your wallet once its cooldown is over. */
  withdrawStake(id: string, idempotencyKey: string = globalThis.crypto.randomUUID()) {
    const path = `/v1/stakes/${encodeURIComponent(id)}/withdraw`;
    return this.request("POST", path, undefined, undefined, StakeView, idempotencyKey);
  }

  /** A node's public stake totals, minimum, eligibility and commission. */
  nodeStake(nodeId: string) {
    const path = `/v1/nodes/${encodeURIComponent(nodeId)}/stake`;
    return this.request("GET", path, undefined, undefined, NodeStakeView);
  }

  /** Sets your node's commission, percent ("10", "12.5"). */
  setCommission(nodeId: string, commissionPercent: string) {
    const path = `/v1/nodes/${encodeURIComponent(nodeId)}/commission`;
    return this.request("PUT", path, { commissionPercent }, undefined, NodeStakeView);
  }

  revokeDevice(id: string, reason?: string) {
    const body = reason === undefined ? {} : { reason };
    return this.request(
      "POST",
      `/v1/devices/${encodeURIComponent(id)}/revoke`,
      body,
      undefined,
      RevokeDeviceResponse,
    );
  }

  registerDevice(body: RegisterDeviceRequest) {
    return this.request("POST", "/v1/devices", body, undefined, RegisterDeviceResponse);
  }

  /** A single-use token a worker machine enrolls with instead of this account's key (shown once). */
  createEnrollmentToken(ttlSeconds?: number) {
    const body = ttlSeconds === undefined ? {} : { ttlSeconds };
    return this.request("POST", "/v1/enrollment-tokens", body, undefined, EnrollmentTokenResponse);
  }

  listEnrollmentTokens() {
    return this.request("GET", "/v1/enrollment-tokens", undefined, undefined, EnrollmentTokenList);
  }

  setNodePrice(nodeId: string, pricePerHour: string) {
    return this.request(
      "PUT",
      `/v1/nodes/${encodeURIComponent(nodeId)}/price`,
      { pricePerHour },
      undefined,
      null,
    );
  }

  search(body: SearchRequest) {
    return this.request("POST", "/v1/search", body, undefined, SearchResponse);
  }

  quote(body: QuoteRequest) {
    return this.request("POST", "/v1/quotes", body, undefined, QuoteView);
  }

  deployCluster(body: DeployRequest, idempotencyKey?: string) {
    return this.request("POST", "/v1/clusters", body, undefined, ClusterView, idempotencyKey);
  }

  /** The nodes a cluster's secrets are sealed to, with their device keys. */
  clusterSecrets(id: string) {
    return this.request(
      "GET",
      `/v1/clusters/${encodeURIComponent(id)}/secrets`,
      undefined,
      undefined,
      ClusterSecretsView,
    );
  }

  putClusterSecrets(id: string, body: PutSecretsRequest) {
    return this.request(
      "PUT",
      `/v1/clusters/${encodeURIComponent(id)}/secrets`,
      body,
      undefined,
      ClusterSecretsView,
    );
  }

  catalogGpus() {
    return this.request("GET", "/v1/catalog/gpus", undefined, undefined, CatalogGpus);
  }

  catalogRegions() {
    return this.request("GET", "/v1/catalog/regions", undefined, undefined, CatalogRegions);
  }

  /** A page of the caller's clusters, newest first (`nextCursor` null on the last). */
  listClusters(query: ClusterListQuery = {}) {
    return this.request("GET", "/v1/clusters", undefined, query as Query, ClusterList);
  }

  getCluster(id: string) {
    return this.request(
      "GET",
      `/v1/clusters/${encodeURIComponent(id)}`,
      undefined,
      undefined,
      ClusterView,
    );
  }

  terminateCluster(id: string) {
    return this.request(
      "DELETE",
      `/v1/clusters/${encodeURIComponent(id)}`,
      undefined,
      undefined,
      ClusterView,
    );
  }

  extendCluster(id: string, hours: number, idempotencyKey?: string) {
    return this.request(
      "POST",
      `/v1/clusters/${encodeURIComponent(id)}/extend`,
      { hours },
      undefined,
      ClusterView,
      idempotencyKey,
    );
  }

  submitTask(id: string, command: string[]) {
    return this.request(
      "POST",
      `/v1/clusters/${encodeURIComponent(id)}/tasks`,
      { command },
      undefined,
      TaskView,
    );
  }

  /** Queues many tasks in one request (at most MAX_TASKS_PER_SUBMIT), all or none. */
  submitTasks(id: string, commands: string[][]) {
    return this.request(
      "POST",
      `/v1/clusters/${encodeURIComponent(id)}/tasks/batch`,
      { commands },
      undefined,
      TaskBatch,
    );
  }

  clusterTasks(id: string) {
    return this.request(
      "GET",
      `/v1/clusters/${encodeURIComponent(id)}/tasks`,
      undefined,
      undefined,
      TaskList,
    );
  }

  clusterLogs(id: string, query: { after?: number; rank?: number; limit?: number } = {}) {
    return this.request(
      "GET",
      `/v1/clusters/${encodeURIComponent(id)}/logs`,
      undefined,
      query,
      LogPage,
    );
  }

  /** Credits a wallet (admin: any account; with the faucet on: your own). A fresh key per call unless given. */
  deposit(body: DepositRequest, idempotencyKey: string = globalThis.crypto.randomUUID()) {
    return this.request(
      "POST",
      "/v1/wallet/deposits",
      body,
      undefined,
      MoneyMovement,
      idempotencyKey,
    );
  }

  withdraw(body: WithdrawalRequest, idempotencyKey: string = globalThis.crypto.randomUUID()) {
    return this.request(
      "POST",
      "/v1/wallet/withdrawals",
      body,
      undefined,
      MoneyMovement,
      idempotencyKey,
    );
  }

  wallet(accountId?: string) {
    return this.request("GET", "/v1/wallet", undefined, { accountId }, WalletView);
  }

  walletTransactions(query: WalletTransactionsQuery = {}) {
    return this.request("GET", "/v1/wallet/transactions", undefined, query, WalletTransactionList);
  }

  /** The currency your earnings are paid in (null: each consumer's). */
  payoutCurrency() {
    return this.request(
      "GET",
      "/v1/wallet/payout-currency",
      undefined,
      undefined,
      PayoutCurrencyView,
    );
  }

  /** Chooses the currency your earnings are paid in; null: the currency each consumer paid. */
  setPayoutCurrency(currency: string | null) {
    return this.request(
      "PUT",
      "/v1/wallet/payout-currency",
      { currency },
      undefined,
      PayoutCurrencyView,
    );
  }

  clusterCosts(id: string) {
    return this.request(
      "GET",
      `/v1/clusters/${encodeURIComponent(id)}/costs`,
      undefined,
      undefined,
      ClusterCostsView,
    );
  }

  ledgerAudit() {
    return this.request("GET", "/v1/admin/ledger-audit", undefined, undefined, LedgerAudit);
  }

  private async request<S extends z.ZodType | null>(
    method: "GET" | "POST" | "PUT" | "DELETE",
    path: string,
    body: unknown,
    query: Query | undefined,
    schema: S,
    idempotencyKey?: string,
  ): Promise<S extends z.ZodType ? z.infer<S> : unknown> {
    const url = new URL(path, this.options.baseUrl);
    for (const [key, value] of Object.entries(query ?? {})) {
      if (value !== undefined) url.searchParams.set(key, String(value));
    }
    const headers: Record<string, string> = {};
    if (body !== undefined) headers["content-type"] = "application/json";
    if (this.options.apiKey !== undefined) headers.authorization = `Bearer ${this.options.apiKey}`;
    if (idempotencyKey !== undefined) headers["idempotency-key"] = idempotencyKey;
    const response = await fetch(url, {
      method,
      headers,
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
      signal: AbortSignal.timeout(this.options.timeoutMs ?? 15_000),
    });
    const text = await response.text();
    const json: unknown = text === "" ? undefined : JSON.parse(text);
    if (!response.ok) {
      const error = ErrorBody.safeParse(json);
      if (error.success) {
        const { code, message, details } = error.data.error;
        throw new TandemApiError(response.status, code, message, details);
      }
      throw new TandemApiError(
        response.status,
        `HTTP_${response.status}`,
        `HTTP ${response.status} from ${path}`,
      );
    }
    return (schema === null ? json : schema.parse(json)) as S extends z.ZodType
      ? z.infer<S>
      : unknown;
  }
}
