/**
 * The placement index: available nodes in partitions of one GPU model, region and zone, each kept
 * sorted best first (`compareCandidates`: cheapest, then most reliable, then oldest id) and carrying
 * bounds (fewest and most GPUs, most VRAM, best uptime and reputation, any TEE) so that a decision
 * skips every partition a filter rules out as a whole (the VRAM tier, the model, the region) and,
 * inside a partition, stops at its first match or at the first node dearer than the price ceiling.
 *
 * Trade-offs and numbers: an update is a binary search and a splice in one partition, O(partition
 * size), plus a rescan of that partition's bounds when a node leaves it; with 100,000 nodes over 13
 * models and 39 zones a partition holds about 140 available nodes, so an update costs microseconds,
 * and a decision reads about 500 partitions' bounds plus a few candidates per partition it merges
 * instead of every available node of a model (or of the whole network when no model is asked).
 */
import type { PlacementCandidate } from "./placement.ts";

/** Orders candidates best first: price ascending, then 30-day uptime descending, then id. */
export function compareCandidates(a: PlacementCandidate, b: PlacementCandidate): number {
  if (a.pricePerHour !== b.pricePerHour) return a.pricePerHour < b.pricePerHour ? -1 : 1;
  if (a.uptime30d !== b.uptime30d) return b.uptime30d - a.uptime30d;
  return a.nodeId < b.nodeId ? -1 : a.nodeId > b.nodeId ? 1 : 0;
}

/** The available nodes of one GPU model in one zone, best first, with bounds over them. */
export interface PlacementPartition<T extends PlacementCandidate> {
  readonly gpuModel: string | null;
  readonly region: string;
  readonly zone: string;
  /** Never empty; sorted by `compareCandidates`. */
  readonly nodes: readonly T[];
  readonly minGpuCount: number;
  readonly maxGpuCount: number;
  readonly maxVramMiB: number;
  readonly maxUptime30d: number;
  readonly maxReputation: number;
  readonly anyTeeCapable: boolean;
}

/** What placement reads: every node (for the elimination funnel) and the available partitions. */
export interface PlacementIndex<T extends PlacementCandidate> {
  all(): Iterable<T>;
  partitions(): Iterable<PlacementPartition<T>>;
}

class Partition<T extends PlacementCandidate> implements PlacementPartition<T> {
  readonly nodes: T[] = [];
  minGpuCount = Infinity;
  maxGpuCount = -Infinity;
  maxVramMiB = -Infinity;
  maxUptime30d = -Infinity;
  maxReputation = -Infinity;
  anyTeeCapable = false;

  constructor(
    readonly gpuModel: string | null,
    readonly region: string,
    readonly zone: string,
  ) {}

  insert(node: T): void {
    this.nodes.splice(this.positionOf(node), 0, node);
    this.widen(node);
  }

  /** Removes `node` (the very entry inserted); answers whether the partition is now empty. */
  delete(node: T): boolean {
    const at = this.positionOf(node);
    if (this.nodes[at]?.nodeId === node.nodeId) this.nodes.splice(at, 1);
    if (!this.bounds(node)) return this.nodes.length === 0;
    this.minGpuCount = Infinity;
    this.maxGpuCount = this.maxVramMiB = this.maxUptime30d = this.maxReputation = -Infinity;
    this.anyTeeCapable = false;
    for (const rest of this.nodes) this.widen(rest);
    return this.nodes.length === 0;
  }

  /** True when `node` sets one of the bounds (so they must be recomputed without it). */
  private bounds(node: T): boolean {
    return (
      node.gpuCount === this.minGpuCount ||
      node.gpuCount === this.maxGpuCount ||
      node.vramMiB === this.maxVramMiB ||
      node.uptime30d === this.maxUptime30d ||
      node.reputation === this.maxReputation ||
      node.teeCapable
    );
  }

  /** First position whose node does not rank before `node`. */
  private positionOf(node: T): number {
    let low = 0;
    let high = this.nodes.length;
    while (low < high) {
      const mid = (low + high) >>> 1;
      if (compareCandidates(this.nodes[mid]!, node) < 0) low = mid + 1;
      else high = mid;
    }
    return low;
  }

  private widen(node: T): void {
    if (node.gpuCount < this.minGpuCount) this.minGpuCount = node.gpuCount;
    if (node.gpuCount > this.maxGpuCount) this.maxGpuCount = node.gpuCount;
    if (node.vramMiB > this.maxVramMiB) this.maxVramMiB = node.vramMiB;
    if (node.uptime30d > this.maxUptime30d) this.maxUptime30d = node.uptime30d;
    if (node.reputation > this.maxReputation) this.maxReputation = node.reputation;
    if (node.teeCapable) this.anyTeeCapable = true;
  }
}

/**
 * Every node by id, and the available ones in sorted partitions, updated one node at a time
 * (`upsert`, `remove`) so the coordinator's inventory stays in step with the store without a
 * rebuild.
 */
export class SortedPlacementIndex<T extends PlacementCandidate> implements PlacementIndex<T> {
  private readonly nodes = new Map<string, T>();
  private readonly byKey = new Map<string, Partition<T>>();

  get size(): number {
    return this.nodes.size;
  }

  all(): Iterable<T> {
    return this.nodes.values();
  }

  partitions(): Iterable<PlacementPartition<T>> {
    return this.byKey.values();
  }

  get(nodeId: string): T | undefined {
    return this.nodes.get(nodeId);
  }

  ids(): Iterable<string> {
    return this.nodes.keys();
  }

  /** Adds `node`, or replaces the node with its id (moving it between partitions as needed). */
  upsert(node: T): void {
    this.remove(node.nodeId);
    this.nodes.set(node.nodeId, node);
    if (!node.available) return;
    const key = partitionKey(node);
    let partition = this.byKey.get(key);
    if (partition === undefined) {
      partition = new Partition<T>(node.gpuModel, node.region, node.zone);
      this.byKey.set(key, partition);
    }
    partition.insert(node);
  }

  remove(nodeId: string): void {
    const node = this.nodes.get(nodeId);
    if (node === undefined) return;
    this.nodes.delete(nodeId);
    if (!node.available) return;
    const key = partitionKey(node);
    if (this.byKey.get(key)?.delete(node) === true) this.byKey.delete(key);
  }
}

function partitionKey(node: PlacementCandidate): string {
  return `${node.gpuModel ?? ""}\u0000${node.region}\u0000${node.zone}`;
}
