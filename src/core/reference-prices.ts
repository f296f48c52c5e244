/**
 * Hyperscaler reference prices, per GPU-hour, that the explorer's prices page shows beside the
 * network's: what the same card costs on demand at a large cloud. A static, hand-kept table: the
 * coordinator fetches nothing. Each entry names its instance, how many GPUs it has, its list price
 * per instance-hour in micro-dollars and where that figure comes from; the per-GPU figure is the
 * instance price divided by its GPUs. Cards no hyperscaler rents by the hour (GeForce and RTX
 * A-series desk cards) have no entry.
 *
 * Sources (on-demand, Linux, US East (N. Virginia), as published at the dates given; AWS lowered
 * P4 and P5 prices by up to 45 % in June 2025, so these are upper references — check the vendor's
 * pricing page before relying on them):
 * - p5.48xlarge (8 × H100 80GB): $98.32/h — AWS EC2 on-demand pricing, as reported by The Next
 *   Platform, "H100 GPU Instance Pricing On AWS: Grin And Bear It", 2023-07-27.
 * - p4de.24xlarge (8 × A100 80GB): $40.96576/h — AWS EC2 on-demand pricing page, 2024.
 * - p4d.24xlarge (8 × A100-SXM4-40GB): $32.7726/h — AWS EC2 on-demand pricing page, 2024 (the
 *   "$32.77 per hour in US East as of Q2 2024" of third-party comparisons).
 * - g6e.xlarge (1 × L40S): $1.861/h — AWS EC2 on-demand pricing page, 2024.
 */

/** One reference offer. */
export interface ReferencePrice {
  provider: string;
  instance: string;
  gpus: number;
  /** List price per instance-hour, micro-dollars. */
  instanceHourMicroUsd: bigint;
  /** Where the figure comes from, and when. */
  source: string;
}

/** By catalog GPU model id. */
export const REFERENCE_PRICES: Readonly<Record<string, ReferencePrice>> = {
  "h100-80gb": {
    provider: "AWS",
    instance: "p5.48xlarge",
    gpus: 8,
    instanceHourMicroUsd: 98_320_000n,
    source: "AWS EC2 on-demand, us-east-1, 2023-07 (The Next Platform, 2023-07-27)",
  },
  "a100-80gb": {
    provider: "AWS",
    instance: "p4de.24xlarge",
    gpus: 8,
    instanceHourMicroUsd: 40_965_760n,
    source: "AWS EC2 on-demand, us-east-1, 2024",
  },
  "a100-40gb": {
    provider: "AWS",
    instance: "p4d.24xlarge",
    gpus: 8,
    instanceHourMicroUsd: 32_772_600n,
    source: "AWS EC2 on-demand, us-east-1, 2024",
  },
  l40s: {
    provider: "AWS",
    instance: "g6e.xlarge",
    gpus: 1,
    instanceHourMicroUsd: 1_861_000n,
    source: "AWS EC2 on-demand, us-east-1, 2024",
  },
};

/** The reference price per GPU-hour in micro-dollars (rounded down), or undefined. */
export function referencePerGpuHour(model: string): bigint | undefined {
  const ref = REFERENCE_PRICES[model];
  return ref === undefined ? undefined : ref.instanceHourMicroUsd / BigInt(ref.gpus);
}
