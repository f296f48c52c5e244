/**
 * Placement: which nodes a cluster gets. A pure function over the coordinator's in-memory
 * inventory, so the same request on the same inventory always yields the same nodes.
 *
 * Candidates pass every filter; among them the cheapest win, then the most reliable (30-day
 * uptime), then the oldest id, so results are stable. With `spreadZones` nodes are taken
 * round-robin across zones (best zone first), so losing a zone loses as few ranks as possible.
 * The head (rank 0) is the first node taken.
 *
 * When the request cannot be met, the answer is the elimination funnel — how many nodes were left
 * after each filter, in a fixed order — because "I see free GPUs but get no bids" is the most
 * common complaint about other networks, and the funnel names the filter to relax.
 *
 * The index (placement-index.ts) keeps available nodes in partitions of one model and zone, each
 * sorted best first. A decision merges the partitions its filters do not rule out (one merge per
 * zone when spreading) and pulls matches until it has enough, so it reads a few candidates per
 * partition instead of every available node. `matching` (the number of nodes that pass every
 * filter) is counted only when read on a placed result, or with the funnel when nothing fits.
 *
 * Behind NAT: a node whose worker is behind NAT has no endpoint its peers can open a path to; it
 * opens paths to them. Two such nodes in one cluster overlay can never reach each other (there is
 * no relay), so an overlay request takes at most `maxBehindNat` of them (default 1, standbys
 * included). It is a limit on the set, not a filter on a node: the pull skips a NATed match once
 * the limit is reached, and the funnel ends with that step only when it left some out.
 */
import {
  compareCandidates,
  SortedPlacementIndex,
  type PlacementIndex,
  type PlacementPartition,
} from "./placement-index.ts";
import { formatMoney, units } from "./money.ts";

export type { PlacementIndex, PlacementPartition } from "./placement-index.ts";

/** `cpu` means CPU-only nodes. */
export const CPU_ONLY_MODEL = "cpu";

export interface PlacementCandidate {
  readonly nodeId: string;
  readonly available: boolean;
  readonly region: string;
  readonly zone: string;
  /** Catalog model id of the node's GPUs; null for a CPU-only node. */
  readonly gpuModel: string | null;
  readonly gpuCount: number;
  /** VRAM of the node's smallest GPU, MiB. */
  readonly vramMiB: number;
  readonly teeCapable: boolean;
  /** Can run `container` clusters (podman on the worker); absent = no. */
  readonly containers?: boolean | undefined;
  /**
   * The engines its worker can run (torch, dask, ray, podman); absent: unknown (a worker from
   * before engines were reported), taken as able so such nodes keep being placed as before.
   */
  readonly engines?: readonly string[] | undefined;
  /** Active TDM staked on it, smallest units (economics/stakes.ts); absent: none. */
  readonly stake?: bigint | undefined;
  readonly uptime30d: number;
  /** Reputation score, 0..100 (src/core/reputation.ts). */
  readonly reputation: number;
  /** Price of the whole node per hour, smallest currency units. */
  readonly pricePerHour: bigint;
  /** What each rank may use at most on this node (its worker's offer); absent: unknown. */
  readonly limits?: RankOffer | undefined;
  /**
   * What its worker can do for job networks: a namespace per rank (`isolation`), a cluster overlay
   * across hosts (`overlay`). Absent: neither (a worker from before them).
   */
  readonly network?: { readonly isolation: boolean; readonly overlay: boolean } | undefined;
  /** Its worker is behind NAT (its peers cannot open a path to it); absent: not known to be. */
  readonly behindNat?: boolean | undefined;
}

/** A node's per-rank offer, or a request's per-rank ask (MiB, cores, tasks). */
export interface RankOffer {
  readonly memoryMiB: number;
  readonly cpuCores: number;
  readonly pids: number;
  readonly diskMiB: number;
}

const LIMIT_LABEL: Record<keyof RankOffer, (n: number) => string> = {
  memoryMiB: (n) => `memory ≥ ${n} MiB`,
  cpuCores: (n) => `cpus ≥ ${n}`,
  pids: (n) => `pids ≥ ${n}`,
  diskMiB: (n) => `disk ≥ ${n} MiB`,
};

export interface PlacementRequest {
  readonly nodes: number;
  /** A catalog model id, or `cpu`; absent = any. */
  readonly gpuModel?: string | undefined;
  readonly gpusPerNode?: number | undefined;
  readonly minVramMiB?: number | undefined;
  readonly regions?: readonly string[] | undefined;
  readonly spreadZones?: boolean | undefined;
  readonly minUptime?: number | undefined;
  /** Minimum reputation score, 0..100. */
  readonly minReputation?: number | undefined;
  readonly maxPricePerHour?: bigint | undefined;
  readonly teeCapable?: boolean | undefined;
  /** Only nodes that can run containers (a `container` cluster). */
  readonly containers?: boolean | undefined;
  /** The engine the cluster's kind runs on (torch, dask, ray); absent: none needed. */
  readonly engine?: string | undefined;
  /** Only nodes with at least this much active TDM staked on them, smallest units. */
  readonly minStake?: bigint | undefined;
  /** Nodes that must not be chosen (already tried, or already in the cluster). */
  readonly exclude?: ReadonlySet<string> | undefined;
  /** Per-rank limits each node must offer at least; a node with no known offer fails any. */
  readonly limits?: { readonly [K in keyof RankOffer]?: number | undefined } | undefined;
  /**
   * The job network each node must build: its own namespace per rank (`isolated`), and the
   * cluster's overlay too (`overlay`, which implies `isolated`). Absent: any node.
   */
  readonly network?: "isolated" | "overlay" | undefined;
  /**
   * With `network: "overlay"`, how many of the chosen nodes may be behind NAT (default 1: two
   * behind NAT cannot reach each other); a replacement in a cluster that has one already: 0.
   */
  readonly maxBehindNat?: number | undefined;
}

/** How many nodes behind NAT `request` may take; undefined: no limit. */
function natLimitOf(request: PlacementRequest): number | undefined {
  return request.network === "overlay" ? (request.maxBehindNat ?? 1) : undefined;
}

/** The funnel's label for the limit on nodes behind NAT. */
function natLabel(limit: number): string {
  return limit === 0
    ? "behind NAT: none (the cluster has one)"
    : `behind NAT: at most ${limit} per cluster`;
}

/** An index over a plain list, for tests and small inventories. */
export function listIndex<T extends PlacementCandidate>(nodes: readonly T[]): PlacementIndex<T> {
  const index = new SortedPlacementIndex<T>();
  for (const node of nodes) index.upsert(node);
  return index;
}

export interface FunnelStep {
  readonly filter: string;
  readonly remaining: number;
}

export type PlacementResult<T extends PlacementCandidate = PlacementCandidate> =
  | { readonly ok: true; readonly nodes: readonly T[]; readonly matching: number }
  | {
      readonly ok: false;
      readonly code: "NO_CAPACITY";
      readonly matching: number;
      readonly funnel: readonly FunnelStep[];
      readonly explanation: string;
    };

type Filter = { label: string; test: (c: PlacementCandidate) => boolean };

function filtersFor(request: PlacementRequest, formatPrice: (units: bigint) => string): Filter[] {
  const filters: Filter[] = [
    { label: "available", test: (c) => c.available && !(request.exclude?.has(c.nodeId) ?? false) },
  ];
  const { gpuModel, gpusPerNode, minVramMiB, regions, minUptime, minReputation } = request;
  const { maxPricePerHour, teeCapable } = request;
  if (gpuModel === CPU_ONLY_MODEL)
    filters.push({ label: "cpu-only", test: (c) => c.gpuCount === 0 });
  else if (gpuModel !== undefined)
    filters.push({ label: gpuModel, test: (c) => c.gpuModel === gpuModel });
  if (gpusPerNode !== undefined)
    filters.push({ label: `gpus ≥ ${gpusPerNode}`, test: (c) => c.gpuCount >= gpusPerNode });
  if (minVramMiB !== undefined)
    filters.push({ label: `vram ≥ ${minVramMiB} MiB`, test: (c) => c.vramMiB >= minVramMiB });
  if (teeCapable === true) filters.push({ label: "tee-capable", test: (c) => c.teeCapable });
  if (request.containers === true)
    filters.push({ label: "runs containers", test: (c) => c.containers === true });
  const { engine } = request;
  if (engine !== undefined)
    filters.push({
      label: `engine ${engine}`,
      test: (c) => c.engines === undefined || c.engines.includes(engine),
    });
  if (request.network !== undefined)
    filters.push({ label: "isolated network", test: (c) => c.network?.isolation === true });
  if (request.network === "overlay")
    filters.push({ label: "cluster overlay", test: (c) => c.network?.overlay === true });
  if (regions !== undefined)
    filters.push({ label: `region ${regions.join("|")}`, test: (c) => regions.includes(c.region) });
  for (const key of Object.keys(LIMIT_LABEL) as Array<keyof RankOffer>) {
    const asked = request.limits?.[key];
    if (asked === undefined) continue;
    filters.push({
      label: LIMIT_LABEL[key](asked),
      test: (c) => c.limits !== undefined && c.limits[key] >= asked,
    });
  }
  if (minUptime !== undefined)
    filters.push({ label: `uptime ≥ ${minUptime}`, test: (c) => c.uptime30d >= minUptime });
  if (minReputation !== undefined) {
    filters.push({
      label: `reputation ≥ ${minReputation}`,
      test: (c) => c.reputation >= minReputation,
    });
  }
  const { minStake } = request;
  if (minStake !== undefined)
    filters.push({
      label: `stake ≥ ${formatMoney(units(minStake))} TDM`,
      test: (c) => (c.stake ?? 0n) >= minStake,
    });
  if (maxPricePerHour !== undefined) {
    filters.push({
      label: `price ≤ ${formatPrice(maxPricePerHour)}/h`,
      test: (c) => c.pricePerHour <= maxPricePerHour,
    });
  }
  return filters;
}

export function place<T extends PlacementCandidate>(
  index: PlacementIndex<T>,
  request: PlacementRequest,
  formatPrice: (units: bigint) => string = String,
): PlacementResult<T> {
  const filters = filtersFor(request, formatPrice);
  const tests = filters.map((f) => f.test);
  const natLimit = natLimitOf(request);
  const nat = { limit: natLimit ?? Infinity, taken: 0 };
  const matches = (c: T) => {
    for (let i = 0; i < tests.length; i++) if (!tests[i]!(c)) return false;
    return true;
  };
  const passes = (c: T) => (c.behindNat !== true || nat.taken < nat.limit) && matches(c);
  const spread = request.spreadZones === true;
  const byZone = new Map<string, PlacementPartition<T>[]>();
  for (const partition of index.partitions()) {
    if (!mayMatch(partition, request)) continue;
    const key = spread ? partition.zone : "";
    const group = byZone.get(key);
    if (group === undefined) byZone.set(key, [partition]);
    else group.push(partition);
  }
  const streams: MatchStream<T>[] = [];
  for (const group of byZone.values()) {
    const stream = new MatchStream(group, passes, request.maxPricePerHour);
    if (stream.peek() !== undefined) streams.push(stream);
  }
  streams.sort((a, b) => compareCandidates(a.peek()!, b.peek()!));
  const chosen = roundRobin(streams, request.nodes, nat);
  const spreadImpossible = spread && request.nodes > 1 && streams.length < 2;
  if (chosen.length === request.nodes && !spreadImpossible) {
    let matching: number | undefined;
    return {
      ok: true,
      nodes: chosen,
      get matching() {
        matching ??= countMatching(index.all(), matches, natLimit);
        return matching;
      },
    };
  }

  const funnel = funnelOf(index.all(), filters, natLimit);
  const steps = funnel.map((s) => `${s.filter}: ${s.remaining}`);
  const need = spreadImpossible
    ? `(need ≥ 2 zones for spread, have ${streams.length})`
    : `(need ${request.nodes})`;
  return {
    ok: false,
    code: "NO_CAPACITY",
    matching: funnel.at(-1)!.remaining,
    funnel,
    explanation: `${steps.join(" → ")} ${need}`,
  };
}

/** False when no node of `partition` can pass the request's filters, judged by its bounds. */
function mayMatch(
  partition: PlacementPartition<PlacementCandidate>,
  request: PlacementRequest,
): boolean {
  const { gpuModel, gpusPerNode, minVramMiB, regions, minUptime, minReputation } = request;
  const { maxPricePerHour, teeCapable } = request;
  if (gpuModel === CPU_ONLY_MODEL) {
    if (partition.minGpuCount !== 0) return false;
  } else if (gpuModel !== undefined && partition.gpuModel !== gpuModel) return false;
  return (
    (gpusPerNode === undefined || partition.maxGpuCount >= gpusPerNode) &&
    (minVramMiB === undefined || partition.maxVramMiB >= minVramMiB) &&
    (teeCapable !== true || partition.anyTeeCapable) &&
    (regions === undefined || regions.includes(partition.region)) &&
    (minUptime === undefined || partition.maxUptime30d >= minUptime) &&
    (minReputation === undefined || partition.maxReputation >= minReputation) &&
    (maxPricePerHour === undefined || partition.nodes[0]!.pricePerHour <= maxPricePerHour)
  );
}

/**
 * The matches of several sorted partitions, best first: a binary heap of cursors ordered by the
 * node each one stands on. Filters run only on the node at the top, so a partition whose nodes
 * never reach the top costs one comparison; a cursor is dropped at the first node dearer than
 * `maxPrice` (every later one is dearer still).
 */
class MatchStream<T extends PlacementCandidate> {
  private readonly heap: Cursor<T>[] = [];
  /** The top's node once it passed the filters; undefined when not yet checked. */
  private checked: T | undefined;

  constructor(
    partitions: readonly PlacementPartition<T>[],
    private readonly passes: (c: T) => boolean,
    private readonly maxPrice: bigint | undefined,
  ) {
    for (const partition of partitions) this.heap.push({ nodes: partition.nodes, at: 0 });
    for (let i = (this.heap.length >>> 1) - 1; i >= 0; i--) this.siftDown(i);
  }

  peek(): T | undefined {
    if (this.checked !== undefined) return this.checked;
    for (;;) {
      const top = this.heap[0];
      if (top === undefined) return undefined;
      const candidate = top.nodes[top.at]!;
      if (this.maxPrice === undefined || candidate.pricePerHour <= this.maxPrice) {
        if (this.passes(candidate)) return (this.checked = candidate);
        top.at++;
        if (top.at < top.nodes.length) {
          this.siftDown(0);
          continue;
        }
      }
      this.dropTop();
    }
  }

  next(): T | undefined {
    const match = this.peek();
    if (match === undefined) return undefined;
    this.checked = undefined;
    const top = this.heap[0]!;
    top.at++;
    if (top.at < top.nodes.length) this.siftDown(0);
    else this.dropTop();
    return match;
  }

  private dropTop(): void {
    const last = this.heap.pop()!;
    if (this.heap.length === 0) return;
    this.heap[0] = last;
    this.siftDown(0);
  }

  private siftDown(from: number): void {
    const heap = this.heap;
    for (let i = from; ;) {
      const left = 2 * i + 1;
      const right = left + 1;
      let best = i;
      if (left < heap.length && this.before(left, best)) best = left;
      if (right < heap.length && this.before(right, best)) best = right;
      if (best === i) return;
      const moved = heap[i]!;
      heap[i] = heap[best]!;
      heap[best] = moved;
      i = best;
    }
  }

  private before(i: number, j: number): boolean {
    const a = this.heap[i]!;
    const b = this.heap[j]!;
    return compareCandidates(a.nodes[a.at]!, b.nodes[b.at]!) < 0;
  }
}

interface Cursor<T> {
  readonly nodes: readonly T[];
  at: number;
}

function funnelOf(
  inventory: Iterable<PlacementCandidate>,
  filters: readonly Filter[],
  natLimit: number | undefined,
): FunnelStep[] {
  const remaining = new Array<number>(filters.length).fill(0);
  let natPassing = 0;
  for (const candidate of inventory) {
    let i = 0;
    for (; i < filters.length; i++) {
      if (!filters[i]!.test(candidate)) break;
      remaining[i]!++;
    }
    if (i === filters.length && candidate.behindNat === true) natPassing++;
  }
  const steps = filters.map((f, i) => ({ filter: f.label, remaining: remaining[i]! }));
  if (natLimit !== undefined && natPassing > natLimit)
    steps.push({
      filter: natLabel(natLimit),
      remaining: steps.at(-1)!.remaining - natPassing + natLimit,
    });
  return steps;
}

/** The nodes that pass every filter, counting at most `natLimit` of those behind NAT. */
function countMatching<T extends PlacementCandidate>(
  inventory: Iterable<T>,
  matches: (c: T) => boolean,
  natLimit: number | undefined,
): number {
  let open = 0;
  let natted = 0;
  for (const candidate of inventory) {
    if (!matches(candidate)) continue;
    if (candidate.behindNat === true) natted++;
    else open++;
  }
  return open + Math.min(natted, natLimit ?? Infinity);
}

/**
 * Takes one match per stream per round, best stream first, until `count` are taken: with one
 * stream per zone this spreads a cluster over zones; with a single stream it takes the best.
 * A node behind NAT counts against `nat`; one a stream checked before the limit was reached is
 * passed over once it is.
 */
function roundRobin<T extends PlacementCandidate>(
  streams: readonly MatchStream<T>[],
  count: number,
  nat: { readonly limit: number; taken: number },
): T[] {
  const chosen: T[] = [];
  const open = [...streams];
  while (chosen.length < count && open.length > 0) {
    for (let i = 0; i < open.length && chosen.length < count;) {
      const next = open[i]!.next();
      if (next === undefined) open.splice(i, 1);
      else if (next.behindNat === true && nat.taken >= nat.limit) continue;
      else {
        if (next.behindNat === true) nat.taken++;
        chosen.push(next);
        i++;
      }
    }
  }
  return chosen;
}
