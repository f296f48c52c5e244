import type { z } from "zod";
import { ErrorCode, TandemError } from "../../core/errors.ts";
import { standbyPrice } from "../../core/failover.ts";
import type { OracleRates } from "../../core/exchange.ts";
import { max, parseMoneyOrThrow, ZERO, type Currency, type Money } from "../../core/money.ts";
import { place, type PlacementRequest } from "../../core/placement.ts";
import type {
  Autoscale,
  CapacityFilters,
  ClusterView,
  SearchRequest,
  SearchResponse,
} from "../../protocol/clusters.ts";
import { formatUnits, type LoadedCluster } from "./cluster-store.ts";
import { networkAsk } from "./cluster-network.ts";
import { rankCount, toCurrency, toUsd, type PlacedNode } from "./leases.ts";
import type { SchedulerResources } from "./resources.ts";

/** A search, a quote or a deploy's placement: filters, size, currency (and a deploy's kind). */
export type OfferRequest = z.output<typeof SearchRequest> & {
  autoscale?: Autoscale | undefined;
  /** A deploy's kind: a `container` cluster needs nodes that run containers. */
  kind?: ClusterView["kind"] | undefined;
};

/**
 * The Python engine each cluster kind runs on, which placement filters on before anything is
 * charged; `batch` needs none, `container` needs podman (placement's "runs containers" filter).
 */
const KIND_ENGINE: Record<ClusterView["kind"], "torch" | "dask" | "ray" | undefined> = {
  batch: undefined,
  torch: "torch",
  dask: "dask",
  ray: "ray",
  container: undefined,
};

/** One node of an offer, with what its lease would be billed per hour in the request's currency. */
export interface OfferedNode extends PlacedNode {
  billedPerHour: Money;
  standby: boolean;
}

/** What an offer prepays beyond its nodes: an autoscaled cluster's room to grow. */
export interface GrowthSlot {
  nodeId: string;
  pricePerHour: Money;
}

export interface OfferOptions {
  /** The price oracle: smallest units of each currency per US dollar (billing's rates too). */
  rates: OracleRates;
  /** A standby's hourly rate, as a percentage of its node's own price. */
  standbyPricePercent: number;
  /** Whether nodes must build job networks (../config.ts `jobNetworks`); default optional. */
  jobNetworks?: "required" | "optional" | undefined;
}

/**
 * Supply as consumers see it: search, and the one pricing path that quotes and deploys share
 * (ranks at their node's price, standbys at the standby rate, an autoscaled cluster's growth at
 * its dearest node's price), and fresh nodes for failover and autoscaling.
 */
export class Offers {
  constructor(
    private readonly resources: Pick<SchedulerResources, "inventory" | "workers" | "logger">,
    private readonly options: OfferOptions,
  ) {}

  search(request: OfferRequest): SearchResponse {
    const rate = this.rate(request.currency);
    const needed = request.nodes + (request.shadow ?? 0);
    const result = place(
      this.resources.inventory,
      this.placementRequest(request, rate, new Set()),
      (usd) => formatUnits(toCurrency(usd, rate)),
    );
    const offers = result.ok ? result.nodes : [];
    return {
      satisfiable: result.ok,
      needed,
      matching: result.matching,
      currency: request.currency,
      offers: offers.map((n) => ({
        nodeId: n.nodeId,
        region: n.region,
        zone: n.zone,
        gpuModel: n.gpuModel,
        gpuCount: n.gpuCount,
        pricePerHour: formatUnits(toCurrency(n.pricePerHour, rate)),
      })),
      funnel: result.ok ? [] : [...result.funnel],
      explanation: result.ok
        ? `${result.matching} matching nodes; ${needed} chosen`
        : result.explanation,
    };
  }

  /**
   * The nodes a deploy would get now (ranks first, then standbys; cheapest first), priced, and
   * its growth slots; NO_CAPACITY with the placement funnel when nothing fits.
   */
  offer(
    request: OfferRequest,
    excluded: ReadonlySet<string> = new Set(),
  ): { nodes: OfferedNode[]; growth: GrowthSlot[] } {
    const rate = this.rate(request.currency);
    const placed = place(
      this.resources.inventory,
      this.placementRequest(request, rate, excluded),
      (usd) => formatUnits(toCurrency(usd, rate)),
    );
    if (!placed.ok) {
      const shadow = request.shadow ?? 0;
      const needed = request.nodes + shadow;
      throw new TandemError(ErrorCode.NO_CAPACITY, placed.explanation, {
        details: {
          funnel: placed.funnel,
          needed,
          ...(shadow > 0 ? { nodes: request.nodes, shadow } : {}),
          shortfall: Math.max(1, needed - placed.matching),
        },
      });
    }
    const nodes = placed.nodes.map((n, i) => {
      const standby = i >= request.nodes;
      const price = toCurrency(n.pricePerHour, rate);
      return {
        nodeId: n.nodeId,
        accountId: n.accountId,
        region: n.region,
        zone: n.zone,
        price,
        billedPerHour: standby ? standbyPrice(price, this.options.standbyPricePercent) : price,
        standby,
      };
    });
    return { nodes, growth: growthSlots(request, nodes) };
  }

  /**
   * A fresh node with the cluster's filters at no more than `ceilingPerHour`, claimed. In place of
   * `replacing`'s rank, it must join the cluster's overlay as the others did, and is behind NAT only
   * when no other active node of the cluster is.
   */
  placeFresh(
    cluster: LoadedCluster,
    ceilingPerHour: Money,
    quiet: boolean,
    replacing?: string,
  ): PlacedNode | undefined {
    const rate = this.rate(cluster.currency);
    const filters = cluster.spec.filters as CapacityFilters;
    const ceiling = toUsd(ceilingPerHour, rate);
    const request = this.placementRequest(
      {
        ...filters,
        nodes: 1,
        shadow: 0,
        autoscale: undefined,
        currency: cluster.currency,
        kind: cluster.kind,
      },
      rate,
      // Never a node that already served this cluster: a node back from the dead gets no rank back.
      new Set(cluster.nodes.map((n) => n.nodeId)),
    );
    const others = cluster.nodes.filter((n) => n.active && n.nodeId !== replacing);
    const placed = place(this.resources.inventory, {
      ...request,
      network: networkAsk(
        { ...filters, nodes: rankCount(cluster), autoscale: cluster.autoscale },
        this.options.jobNetworks ?? "optional",
      ),
      maxBehindNat: others.some((n) => this.resources.workers.behindNat(n.nodeId)) ? 0 : 1,
      // One node spreads nowhere, and is never paid more than the cluster was charged for.
      spreadZones: false,
      maxPricePerHour:
        request.maxPricePerHour === undefined || request.maxPricePerHour > ceiling
          ? ceiling
          : request.maxPricePerHour,
    });
    if (!placed.ok) {
      if (!quiet)
        this.resources.logger.warn(
          { clusterId: cluster.id, explanation: placed.explanation },
          "no replacement node",
        );
      return undefined;
    }
    const node = placed.nodes[0]!;
    this.resources.inventory.markTaken([node.nodeId]);
    return {
      nodeId: node.nodeId,
      accountId: node.accountId,
      region: node.region,
      zone: node.zone,
      price: toCurrency(node.pricePerHour, rate),
    };
  }

  private placementRequest(
    request: OfferRequest,
    rate: bigint,
    exclude: ReadonlySet<string>,
  ): PlacementRequest {
    return {
      nodes: request.nodes + (request.shadow ?? 0),
      gpuModel: request.gpuModel,
      gpusPerNode: request.gpusPerNode,
      minVramMiB: request.minVramMiB,
      regions: request.regions,
      spreadZones: request.spreadZones,
      minUptime: request.minUptime,
      minReputation: request.minReputation,
      teeCapable: request.teeCapable,
      containers: request.kind === "container" ? true : undefined,
      engine: request.kind === undefined ? undefined : KIND_ENGINE[request.kind],
      minStake:
        request.minStake === undefined
          ? undefined
          : parseMoneyOrThrow(request.minStake, { field: "minStake" }),
      limits: request.limits,
      network: networkAsk(request, this.options.jobNetworks ?? "optional"),
      maxPricePerHour:
        request.maxPricePerHour === undefined
          ? undefined
          : toUsd(parseMoneyOrThrow(request.maxPricePerHour, { field: "maxPricePerHour" }), rate),
      exclude,
    };
  }

  private rate(currency: Currency): bigint {
    const rate = this.options.rates[currency];
    if (rate === undefined)
      throw new TandemError(ErrorCode.VALIDATION_FAILED, `no price oracle rate for ${currency}`);
    return rate;
  }
}

/**
 * What an autoscaled cluster prepays beyond its first nodes: up to `max` nodes, each slot at the
 * dearest placed node's price, so growth is always paid for (unused node-time is refunded).
 */
function growthSlots(
  request: { nodes: number; autoscale?: Autoscale | undefined },
  placed: ReadonlyArray<{ price: Money }>,
): GrowthSlot[] {
  if (request.autoscale === undefined) return [];
  const price = placed.reduce((m, n) => max(m, n.price), ZERO);
  return Array.from({ length: request.autoscale.max - request.nodes }, (_, i) => ({
    nodeId: `growth-${i + 1}`,
    pricePerHour: price,
  }));
}
