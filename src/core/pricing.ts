/**
 * Catalog pricing (DESIGN §6, the default mode): one price per GPU model, per GPU-hour, network
 * wide, in US dollars' smallest units; a CPU-only node has a flat price. A node's price is its
 * model's price times its GPU count. Other currencies convert through a price oracle's rate
 * (`unitsPerUsd`); USDC and USD are 1:1. Market mode (suppliers set their own price) comes later.
 */
export interface CatalogPrices {
  /** Per GPU-hour, by catalog model id, in micro-dollars. */
  readonly perGpuHour: Readonly<Record<string, bigint>>;
  /** Per node-hour for a CPU-only node, in micro-dollars. */
  readonly cpuNodeHour: bigint;
}

/** Defaults close to the community-cloud market of late 2026 (micro-dollars per GPU-hour). */
export const DEFAULT_CATALOG_PRICES: CatalogPrices = {
  perGpuHour: {
    h200: 2_500_000n,
    "h100-80gb": 1_990_000n,
    "h100-pcie": 1_590_000n,
    "a100-80gb": 1_190_000n,
    "a100-40gb": 990_000n,
    l40s: 790_000n,
    "rtx-a6000": 450_000n,
    "rtx-4090": 390_000n,
    "rtx-4080": 280_000n,
    "rtx-a5000": 250_000n,
    "rtx-3090": 220_000n,
    "rtx-a4000": 170_000n,
    "rtx-4070": 150_000n,
    "rtx-3080": 150_000n,
    "rtx-3070": 120_000n,
    "rtx-3060-ti": 100_000n,
  },
  cpuNodeHour: 20_000n,
};

/** Micro-dollars per hour for a node, or undefined for a GPU model the catalog cannot price. */
export function nodePriceUsd(
  prices: CatalogPrices,
  gpuModel: string | null,
  gpuCount: number,
): bigint | undefined {
  if (gpuCount === 0) return prices.cpuNodeHour;
  if (gpuModel === null) return undefined;
  const perGpu = prices.perGpuHour[gpuModel];
  return perGpu === undefined ? undefined : perGpu * BigInt(gpuCount);
}

/** Converts micro-dollars to a currency's smallest units at `unitsPerUsd` (units of the currency per 1 USD, 6 decimals), rounding down. */
export function convertFromUsd(microUsd: bigint, unitsPerUsd: bigint): bigint {
  return (microUsd * unitsPerUsd) / 1_000_000n;
}
