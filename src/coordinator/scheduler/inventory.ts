import type { Kysely, Selectable } from "kysely";
import { gpuModelById } from "../../core/gpu-catalog.ts";
import {
  CPU_ONLY_MODEL,
  type PlacementCandidate,
  type PlacementIndex,
} from "../../core/placement.ts";
import { nodePriceUsd, type CatalogPrices } from "../../core/pricing.ts";
import type { CoordinatorEvents } from "../events.ts";
import type { Database, NodesTable } from "../store/schema.ts";

/** A placement candidate plus who gets paid for it; prices are micro-dollars per node-hour. */
export interface InventoryNode extends PlacementCandidate {
  readonly accountId: string;
}

/**
 * The scheduler's in-memory view of rentable supply, kept in step with the store: loaded at start,
 * refreshed from the row whenever a node changes status. Placement reads only this (no query per
 * decision); the database still has the last word when a reservation is written (the unique
 * active-lease index and the node's status check in the same transaction).
 */
export class Inventory implements PlacementIndex<InventoryNode> {
  private readonly nodes = new Map<string, InventoryNode>();
  /** Available nodes by GPU model (`cpu` for CPU-only), so a decision scans one bucket. */
  private readonly availableByModel = new Map<string, Map<string, InventoryNode>>();
  private readonly availableNodes = new Map<string, InventoryNode>();

  constructor(
    private readonly db: Kysely<Database>,
    private readonly prices: CatalogPrices,
    private readonly pricingMode: "catalog" | "market",
    events: CoordinatorEvents,
    /** Where a failed refresh is told (the node keeps its last known state until the next one). */
    private readonly onError: (error: unknown, nodeId: string) => void = () => {},
  ) {
    events.on("node:status", ({ nodeId }) => this.refreshInBackground(nodeId));
    events.on("node:metadata", ({ nodeId }) => this.refreshInBackground(nodeId));
    events.on("node:reputation", ({ nodeId, reputation }) => {
      const node = this.nodes.get(nodeId);
      if (node !== undefined) this.set({ ...node, reputation });
    });
  }

  get size(): number {
    return this.nodes.size;
  }

  all(): Iterable<InventoryNode> {
    return this.nodes.values();
  }

  available(gpuModel: string | undefined): Iterable<InventoryNode> {
    if (gpuModel === undefined) return this.availableNodes.values();
    return this.availableByModel.get(gpuModel)?.values() ?? [];
  }

  get(nodeId: string): InventoryNode | undefined {
    return this.nodes.get(nodeId);
  }

  async load(): Promise<void> {
    const rows = await this.db
      .selectFrom("nodes")
      .selectAll()
      .where("status", "!=", "revoked")
      .execute();
    for (const id of [...this.nodes.keys()]) this.remove(id);
    for (const row of rows) this.put(row);
  }

  async refresh(nodeId: string): Promise<void> {
    const row = await this.db
      .selectFrom("nodes")
      .selectAll()
      .where("id", "=", nodeId)
      .executeTakeFirst();
    if (row === undefined || row.status === "revoked") this.remove(nodeId);
    else this.put(row);
  }

  /** A refresh nobody awaits (an event's); its failure is reported, never left unhandled. */
  refreshInBackground(nodeId: string): void {
    this.refresh(nodeId).catch((error: unknown) => this.onError(error, nodeId));
  }

  /** Marks nodes taken at once, before their status events arrive, so no decision reuses them. */
  markTaken(nodeIds: Iterable<string>): void {
    for (const id of nodeIds) {
      const node = this.nodes.get(id);
      if (node !== undefined) this.set({ ...node, available: false });
    }
  }

  private put(row: Selectable<NodesTable>): void {
    const own =
      this.pricingMode === "market" && row.price_per_hour !== null
        ? BigInt(row.price_per_hour)
        : undefined;
    const price = own ?? nodePriceUsd(this.prices, row.gpu_model, row.gpu_count);
    const flagged = row.flags !== "";
    this.set({
      nodeId: row.id,
      accountId: row.account_id,
      // A node the catalog cannot price, one flagged (e.g. a duplicated GPU UUID) or a draining one
      // is not rented.
      available:
        row.status === "available" && price !== undefined && !flagged && row.draining === 0,
      region: row.region,
      zone: row.zone,
      gpuModel: row.gpu_model,
      gpuCount: row.gpu_count,
      vramMiB: row.vram_mib,
      teeCapable:
        row.gpu_model === null ? false : (gpuModelById(row.gpu_model)?.teeCapable ?? false),
      uptime30d: row.uptime_30d,
      reputation: row.reputation,
      pricePerHour: price ?? 0n,
    });
  }

  private set(node: InventoryNode): void {
    this.remove(node.nodeId);
    this.nodes.set(node.nodeId, node);
    if (!node.available) return;
    this.availableNodes.set(node.nodeId, node);
    const key = node.gpuCount === 0 ? CPU_ONLY_MODEL : node.gpuModel;
    if (key === null) return;
    let bucket = this.availableByModel.get(key);
    if (bucket === undefined)
      this.availableByModel.set(key, (bucket = new Map<string, InventoryNode>()));
    bucket.set(node.nodeId, node);
  }

  private remove(nodeId: string): void {
    const node = this.nodes.get(nodeId);
    if (node === undefined) return;
    this.nodes.delete(nodeId);
    this.availableNodes.delete(nodeId);
    const key = node.gpuCount === 0 ? CPU_ONLY_MODEL : node.gpuModel;
    if (key !== null) this.availableByModel.get(key)?.delete(nodeId);
  }
}
