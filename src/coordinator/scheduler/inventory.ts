import type { Kysely, Selectable } from "kysely";
import { gpuModelById } from "../../core/gpu-catalog.ts";
import type { PlacementCandidate } from "../../core/placement.ts";
import { SortedPlacementIndex } from "../../core/placement-index.ts";
import { nodePriceUsd, type CatalogPrices } from "../../core/pricing.ts";
import { NetworkCapability } from "../../protocol/cluster-network.ts";
import { RankLimits } from "../../protocol/hardware.ts";
import { stakeTotals } from "../economics/stake-queries.ts";
import type { CoordinatorEvents } from "../events.ts";
import type { Database, NodesTable } from "../store/schema.ts";

/** Node rows per refresh query (SQLite binds at most 32,766 parameters). */
const REFRESH_BATCH = 500;

/** A placement candidate plus who gets paid for it; prices are micro-dollars per node-hour. */
export interface InventoryNode extends PlacementCandidate {
  readonly accountId: string;
}

/**
 * The scheduler's in-memory view of rentable supply, kept in step with the store: loaded at start,
 * refreshed from the row whenever a node changes status. Placement reads only this (no query per
 * decision); the database still has the last word when a reservation is written (the unique
 * active-lease index and the node's status check in the same transaction). Each change moves one
 * node in the sorted placement index (src/core/placement-index.ts); nothing is rebuilt.
 */
export class Inventory extends SortedPlacementIndex<InventoryNode> {
  constructor(
    private readonly db: Kysely<Database>,
    private readonly prices: CatalogPrices,
    private readonly pricingMode: "catalog" | "market",
    events: CoordinatorEvents,
    /** Where a failed refresh is told (the node keeps its last known state until the next one). */
    private readonly onError: (error: unknown, nodeId: string) => void = () => {},
    /**
     * Nodes online when the coordinator started and not heard from since (WorkerChannel's
     * `awaitingContact`): not rented until they are; refresh the node when it reconnects.
     */
    private readonly awaitingContact: (nodeId: string) => boolean = () => false,
    /**
     * Whether the node's worker is behind NAT, as its connection here tells (WorkerChannel's
     * `behindNat`); read at each refresh, and a node is refreshed whenever its worker connects.
     */
    private readonly behindNat: (nodeId: string) => boolean = () => false,
  ) {
    super();
    events.on("node:status", ({ nodeId }) => this.refreshInBackground(nodeId));
    events.on("node:metadata", ({ nodeId }) => this.refreshInBackground(nodeId));
    // A stake added, unstaked or withdrawn changes what `minStake` placement sees.
    events.on("node:stake", ({ nodeId }) => {
      this.refreshStake(nodeId).catch((error: unknown) => this.onError(error, nodeId));
    });
    events.on("node:reputation", ({ nodeId, reputation }) => {
      const node = this.get(nodeId);
      if (node !== undefined) this.upsert({ ...node, reputation });
    });
  }

  /** Active TDM stake per node, units: read at load, then only when a `node:stake` event says. */
  private readonly stakes = new Map<string, bigint>();
  /** The refresh being gathered this turn of the event loop: its nodes, and when it is done. */
  private refreshing: { nodeIds: Set<string>; done: Promise<void> } | undefined;
  /** The last batch's end (settled either way). */
  private refreshed: Promise<void> = Promise.resolve();
  /** Stake reads started per node, so that a slower, older read never overwrites a newer one. */
  private readonly stakeReads = new Map<string, number>();

  // Stakes are read before the node rows: the row is put as soon as it is read, so a reputation
  // announced meanwhile (the `node:reputation` event) is never overwritten by an older row.
  async load(): Promise<void> {
    const stakes = await stakeTotals(this.db);
    const rows = await this.db
      .selectFrom("nodes")
      .selectAll()
      .where("status", "!=", "revoked")
      .execute();
    for (const id of [...this.ids()]) this.remove(id);
    this.stakes.clear();
    for (const [nodeId, { active }] of stakes) this.stakes.set(nodeId, active);
    for (const row of rows) this.put(row);
  }

  /**
   * Reads the node's row again. Refreshes asked for in the same turn of the event loop share one
   * query (a burst of connects, or another replica's notices, changes many nodes at once).
   */
  refresh(nodeId: string): Promise<void> {
    if (this.refreshing === undefined) {
      const batch = { nodeIds: new Set<string>(), done: Promise.resolve() };
      // One batch at a time, in order: a later read never lands before an earlier one.
      batch.done = this.refreshed
        .then(() => new Promise<void>((resolve) => setImmediate(resolve)))
        .then(() => {
          this.refreshing = undefined;
          return this.refreshNow([...batch.nodeIds]);
        });
      this.refreshing = batch;
      this.refreshed = batch.done.catch(() => undefined);
    }
    this.refreshing.nodeIds.add(nodeId);
    return this.refreshing.done;
  }

  private async refreshNow(nodeIds: string[]): Promise<void> {
    for (let i = 0; i < nodeIds.length; i += REFRESH_BATCH) {
      const ids = nodeIds.slice(i, i + REFRESH_BATCH);
      const rows = await this.db.selectFrom("nodes").selectAll().where("id", "in", ids).execute();
      const found = new Map(rows.map((row) => [row.id, row]));
      for (const nodeId of ids) {
        const row = found.get(nodeId);
        if (row === undefined || row.status === "revoked") this.remove(nodeId);
        else this.put(row);
      }
    }
  }

  private async refreshStake(nodeId: string): Promise<void> {
    const read = (this.stakeReads.get(nodeId) ?? 0) + 1;
    this.stakeReads.set(nodeId, read);
    const stake = (await stakeTotals(this.db, [nodeId])).get(nodeId)?.active ?? 0n;
    if (this.stakeReads.get(nodeId) !== read) return; // a newer read is under way
    this.stakeReads.delete(nodeId);
    this.stakes.set(nodeId, stake);
    const node = this.get(nodeId);
    if (node !== undefined) this.upsert({ ...node, stake });
  }

  /** A refresh nobody awaits (an event's); its failure is reported, never left unhandled. */
  refreshInBackground(nodeId: string): void {
    this.refresh(nodeId).catch((error: unknown) => this.onError(error, nodeId));
  }

  /** Marks nodes taken at once, before their status events arrive, so no decision reuses them. */
  markTaken(nodeIds: Iterable<string>): void {
    for (const id of nodeIds) {
      const node = this.get(id);
      if (node !== undefined && node.available) this.upsert({ ...node, available: false });
    }
  }

  private put(row: Selectable<NodesTable>): void {
    const own =
      this.pricingMode === "market" && row.price_per_hour !== null
        ? BigInt(row.price_per_hour)
        : undefined;
    const price = own ?? nodePriceUsd(this.prices, row.gpu_model, row.gpu_count);
    const flagged = row.flags !== "";
    this.upsert({
      nodeId: row.id,
      accountId: row.account_id,
      // A node the catalog cannot price, one flagged (e.g. a duplicated GPU UUID), a draining one
      // or one not heard from since a restart is not rented.
      available:
        row.status === "available" &&
        price !== undefined &&
        !flagged &&
        row.draining === 0 &&
        !this.awaitingContact(row.id),
      region: row.region,
      zone: row.zone,
      gpuModel: row.gpu_model,
      gpuCount: row.gpu_count,
      vramMiB: row.vram_mib,
      teeCapable:
        row.gpu_model === null ? false : (gpuModelById(row.gpu_model)?.teeCapable ?? false),
      ...hardwareFacts(row.hardware),
      uptime30d: row.uptime_30d,
      reputation: row.reputation,
      pricePerHour: price ?? 0n,
      // Active stake only: unbonding stake may leave mid-lease.
      stake: this.stakes.get(row.id) ?? 0n,
      behindNat: this.behindNat(row.id),
    });
  }
}

/**
 * What placement reads from a node's stored hardware report: whether it lists a container runtime,
 * the engines it can run (absent: unknown),
 * its per-rank offer (absent from workers before limits, or unreadable: no offer), and what it can
 * do for job networks (absent or unreadable: nothing).
 */
export function hardwareFacts(hardwareJson: string): {
  containers: boolean;
  engines: string[] | undefined;
  limits: RankLimits | undefined;
  network: { isolation: boolean; overlay: boolean } | undefined;
} {
  let hardware: { runtimes?: unknown; engines?: unknown; limits?: unknown; network?: unknown };
  try {
    hardware = JSON.parse(hardwareJson) as typeof hardware;
  } catch {
    return { containers: false, engines: undefined, limits: undefined, network: undefined };
  }
  const { engines } = hardware;
  const limits = RankLimits.safeParse(hardware.limits);
  const network = NetworkCapability.safeParse(hardware.network);
  return {
    containers: Array.isArray(hardware.runtimes) && hardware.runtimes.includes("podman"),
    engines: Array.isArray(engines)
      ? engines.filter((e): e is string => typeof e === "string")
      : undefined,
    limits: limits.success ? limits.data : undefined,
    network: network.success
      ? { isolation: network.data.isolation, overlay: network.data.overlay !== null }
      : undefined,
  };
}
