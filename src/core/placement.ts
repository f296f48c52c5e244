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
 */

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
  readonly uptime30d: number;
  /** Reputation score, 0..100 (src/core/reputation.ts). */
  readonly reputation: number;
  /** Price of the whole node per hour, smallest currency units. */
  readonly pricePerHour: bigint;
}

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
  /** Nodes that must not be chosen (already tried, or already in the cluster). */
  readonly exclude?: ReadonlySet<string> | undefined;
}

/**
 * What placement reads: every node (for the elimination funnel) and, for the fast path, the nodes
 * that are available — optionally only those of one GPU model (`cpu` for CPU-only) — so a decision
 * touches one bucket instead of the whole network.
 */
export interface PlacementIndex<T extends PlacementCandidate> {
  all(): Iterable<T>;
  available(gpuModel: string | undefined): Iterable<T>;
}

/** An index over a plain list, for tests and small inventories. */
export function listIndex<T extends PlacementCandidate>(nodes: readonly T[]): PlacementIndex<T> {
  const matchesModel = (n: T, gpuModel: string | undefined) =>
    gpuModel === undefined ||
    (gpuModel === CPU_ONLY_MODEL ? n.gpuCount === 0 : n.gpuModel === gpuModel);
  return {
    all: () => nodes,
    available: (gpuModel) => nodes.filter((n) => n.available && matchesModel(n, gpuModel)),
  };
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
  if (regions !== undefined)
    filters.push({ label: `region ${regions.join("|")}`, test: (c) => regions.includes(c.region) });
  if (minUptime !== undefined)
    filters.push({ label: `uptime ≥ ${minUptime}`, test: (c) => c.uptime30d >= minUptime });
  if (minReputation !== undefined) {
    filters.push({
      label: `reputation ≥ ${minReputation}`,
      test: (c) => c.reputation >= minReputation,
    });
  }
  if (maxPricePerHour !== undefined) {
    filters.push({
      label: `price ≤ ${formatPrice(maxPricePerHour)}/h`,
      test: (c) => c.pricePerHour <= maxPricePerHour,
    });
  }
  return filters;
}

function better(a: PlacementCandidate, b: PlacementCandidate): number {
  if (a.pricePerHour !== b.pricePerHour) return a.pricePerHour < b.pricePerHour ? -1 : 1;
  if (a.uptime30d !== b.uptime30d) return b.uptime30d - a.uptime30d;
  return a.nodeId < b.nodeId ? -1 : a.nodeId > b.nodeId ? 1 : 0;
}

export function place<T extends PlacementCandidate>(
  index: PlacementIndex<T>,
  request: PlacementRequest,
  formatPrice: (units: bigint) => string = String,
): PlacementResult<T> {
  const filters = filtersFor(request, formatPrice);
  const spread = request.spreadZones === true;
  // Only the best `nodes` per zone (or overall) are kept while scanning: no sort of every match.
  const bestByZone = new Map<string, T[]>();
  let matching = 0;
  const tests = filters.map((f) => f.test);
  const passes = (c: T) => {
    for (let i = 0; i < tests.length; i++) if (!tests[i]!(c)) return false;
    return true;
  };
  for (const candidate of index.available(request.gpuModel)) {
    if (!passes(candidate)) continue;
    matching++;
    const key = spread ? candidate.zone : "";
    let best = bestByZone.get(key);
    if (best === undefined) bestByZone.set(key, (best = []));
    insertBounded(best, candidate, request.nodes);
  }
  const chosen = spread
    ? roundRobinByZone(
        [...bestByZone.values()].sort((a, b) => better(a[0]!, b[0]!)),
        request.nodes,
      )
    : (bestByZone.get("") ?? []);
  const spreadImpossible = spread && request.nodes > 1 && bestByZone.size < 2;
  if (chosen.length === request.nodes && !spreadImpossible)
    return { ok: true, nodes: chosen, matching };

  const zones = bestByZone.size;
  const funnel = funnelOf(index.all(), filters);
  const steps = funnel.map((s) => `${s.filter}: ${s.remaining}`);
  const need = spreadImpossible
    ? `(need ≥ 2 zones for spread, have ${zones})`
    : `(need ${request.nodes})`;
  return {
    ok: false,
    code: "NO_CAPACITY",
    matching,
    funnel,
    explanation: `${steps.join(" → ")} ${need}`,
  };
}

function funnelOf(
  inventory: Iterable<PlacementCandidate>,
  filters: readonly Filter[],
): FunnelStep[] {
  const remaining = new Array<number>(filters.length).fill(0);
  for (const candidate of inventory) {
    for (let i = 0; i < filters.length; i++) {
      if (!filters[i]!.test(candidate)) break;
      remaining[i]!++;
    }
  }
  return filters.map((f, i) => ({ filter: f.label, remaining: remaining[i]! }));
}

/** Inserts `candidate` into `best` (sorted, best first) if it ranks among the top `limit`. */
function insertBounded<T extends PlacementCandidate>(best: T[], candidate: T, limit: number): void {
  if (best.length === limit && better(candidate, best[limit - 1]!) >= 0) return;
  let at = best.length;
  while (at > 0 && better(candidate, best[at - 1]!) < 0) at--;
  best.splice(at, 0, candidate);
  if (best.length > limit) best.pop();
}

/** Takes nodes one zone at a time, best zone first, each zone's best node first. */
function roundRobinByZone<T extends PlacementCandidate>(
  queues: readonly T[][],
  count: number,
): T[] {
  const chosen: T[] = [];
  for (let round = 0; chosen.length < count; round++) {
    let took = false;
    for (const queue of queues) {
      const next = queue[round];
      if (next === undefined || chosen.length >= count) continue;
      chosen.push(next);
      took = true;
    }
    if (!took) break;
  }
  return chosen;
}
