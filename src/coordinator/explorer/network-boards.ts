import { GPU_MODEL_IDS, gpuModelById } from "../../core/gpu-catalog.ts";
import { formatMoney, units } from "../../core/money.ts";
import { isOnline, isProven, type NodeStatus } from "../../core/node-status.ts";
import type { CatalogPrices } from "../../core/pricing.ts";
import { REFERENCE_PRICES, referencePerGpuHour } from "../../core/reference-prices.ts";
import { REGIONS } from "../../core/regions.ts";
import type { ModelPrice, PriceBoard, RegionBoard } from "../../protocol/network.ts";
import { toNumber } from "../store/rows.ts";
import type { ReadDb } from "../store/transaction.ts";

const usd = (microUsd: bigint) => formatMoney(units(microUsd));

/**
 * The prices page: per catalog GPU model, the catalog price, in market mode the lowest and median
 * supplier price over the available nodes (a node without its own price charges the catalog's),
 * how many nodes and GPUs are available (a flagged node is not: it is never rented), and a
 * hyperscaler's price for the same card.
 */
export async function priceBoard(
  db: ReadDb,
  prices: CatalogPrices,
  pricingMode: "catalog" | "market",
  nowMs: number,
): Promise<PriceBoard> {
  const available = await db
    .selectFrom("nodes")
    .select("gpu_model")
    .select((eb) => [
      eb.fn.countAll<number | string>().as("nodes"),
      eb.fn.sum<number | string | null>("gpu_count").as("gpus"),
    ])
    .where("status", "=", "available")
    .where("flags", "=", "")
    .where("gpu_model", "is not", null)
    .groupBy("gpu_model")
    .execute();
  const counts = new Map(
    available.map((r) => [
      r.gpu_model!,
      { nodes: toNumber(r.nodes), gpus: r.gpus === null ? 0 : toNumber(r.gpus) },
    ]),
  );
  const own = new Map<string, bigint[]>();
  if (pricingMode === "market") {
    const rows = await db
      .selectFrom("nodes")
      .select(["gpu_model", "gpu_count", "price_per_hour"])
      .where("status", "=", "available")
      .where("flags", "=", "")
      .where("gpu_model", "is not", null)
      .where("gpu_count", ">", 0)
      .where("price_per_hour", "is not", null)
      .execute();
    for (const r of rows) {
      const list = own.get(r.gpu_model!) ?? [];
      list.push(BigInt(r.price_per_hour!) / BigInt(r.gpu_count));
      own.set(r.gpu_model!, list);
    }
  }
  const models = GPU_MODEL_IDS.map((id): ModelPrice => {
    const model = gpuModelById(id)!;
    const catalog = prices.perGpuHour[id] ?? 0n;
    const count = counts.get(id) ?? { nodes: 0, gpus: 0 };
    const ref = REFERENCE_PRICES[id];
    return {
      model: id,
      name: model.name,
      tier: model.tier,
      catalogPerGpuHour: usd(catalog),
      market:
        pricingMode === "market" ? marketFigures(own.get(id) ?? [], count.nodes, catalog) : null,
      availableNodes: count.nodes,
      availableGpus: count.gpus,
      reference:
        ref === undefined
          ? null
          : {
              provider: ref.provider,
              instance: ref.instance,
              perGpuHour: usd(referencePerGpuHour(id)!),
              source: ref.source,
            },
    };
  });
  return {
    pricingMode,
    currency: "USD",
    cpuNodePerHour: usd(prices.cpuNodeHour),
    models,
    asOf: new Date(nowMs).toISOString(),
  };
}

/**
 * Lowest and median per-GPU price over `nodes` available nodes, `ownPrices` of which set their
 * own; the rest charge `catalog`. The median of an even count is the lower middle (a price some
 * node really asks), null figures when none is available.
 */
export function marketFigures(
  ownPrices: readonly bigint[],
  nodes: number,
  catalog: bigint,
): ModelPrice["market"] {
  if (nodes === 0) return { nodes: 0, minPerGpuHour: usd(catalog), medianPerGpuHour: usd(catalog) };
  const all = [...ownPrices, ...Array<bigint>(Math.max(0, nodes - ownPrices.length)).fill(catalog)];
  all.sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
  return {
    nodes,
    minPerGpuHour: usd(all[0]!),
    medianPerGpuHour: usd(all[Math.floor((all.length - 1) / 2)]!),
  };
}

/**
 * Nodes and GPUs, total and online, and the GPUs verified (online, past `unverified`, not
 * flagged), per region and zone; every known region and zone listed.
 */
export async function regionBoard(db: ReadDb, nowMs: number): Promise<RegionBoard> {
  const rows = await db
    .selectFrom("nodes")
    .select(["zone", "status", "flags"])
    .select((eb) => [
      eb.fn.countAll<number | string>().as("nodes"),
      eb.fn.sum<number | string | null>("gpu_count").as("gpus"),
    ])
    .groupBy(["zone", "status", "flags"])
    .execute();
  const empty = () => ({ nodes: 0, online: 0, gpus: 0, gpusOnline: 0, gpusVerified: 0 });
  const zones = new Map<string, ReturnType<typeof empty>>();
  for (const r of rows) {
    const z = zones.get(r.zone) ?? empty();
    const nodes = toNumber(r.nodes);
    const gpus = r.gpus === null ? 0 : toNumber(r.gpus);
    z.nodes += nodes;
    z.gpus += gpus;
    if (isOnline(r.status as NodeStatus)) {
      z.online += nodes;
      z.gpusOnline += gpus;
    }
    if (r.flags === "" && isProven(r.status as NodeStatus)) z.gpusVerified += gpus;
    zones.set(r.zone, z);
  }
  return {
    regions: REGIONS.map((region) => {
      const list = region.zones.map((id) => ({ id, ...(zones.get(id) ?? empty()) }));
      const total = empty();
      for (const z of list) {
        total.nodes += z.nodes;
        total.online += z.online;
        total.gpus += z.gpus;
        total.gpusOnline += z.gpusOnline;
        total.gpusVerified += z.gpusVerified;
      }
      return { id: region.id, name: region.name, ...total, zones: list };
    }),
    asOf: new Date(nowMs).toISOString(),
  };
}
