import type { NodeView } from "../../src/protocol/nodes.ts";

const integer = new Intl.NumberFormat("en");

export function formatCount(n: number): string {
  return integer.format(n);
}

/** Sizes arrive in MiB; people read GiB (or TiB). */
export function formatMiB(mib: number): string {
  if (mib >= 1024 * 1024) return `${(mib / 1024 / 1024).toFixed(1)} TiB`;
  if (mib >= 1024) return `${Math.round(mib / 1024)} GiB`;
  return `${mib} MiB`;
}

/** A fraction 0..1 as a percentage with one decimal (no decimals at 0 and 100). */
export function formatFraction(fraction: number): string {
  const pct = fraction * 100;
  return pct === 0 || pct === 100 ? `${pct} %` : `${pct.toFixed(1)} %`;
}

export function formatDateTime(iso: string): string {
  return new Date(iso).toLocaleString("en", { dateStyle: "medium", timeStyle: "medium" });
}

const relative = new Intl.RelativeTimeFormat("en", { numeric: "auto" });
const STEPS: Array<[Intl.RelativeTimeFormatUnit, number]> = [
  ["second", 60],
  ["minute", 60],
  ["hour", 24],
  ["day", 30],
  ["month", 12],
  ["year", Infinity],
];

/** "3 minutes ago", from an ISO time and the current time. */
export function formatAgo(iso: string, nowMs: number = Date.now()): string {
  let value = (new Date(iso).getTime() - nowMs) / 1000;
  for (const [unit, size] of STEPS) {
    if (Math.abs(value) < size) return relative.format(Math.round(value), unit);
    value /= size;
  }
  return formatDateTime(iso);
}

/** "8 × h100-80gb", "CPU only". */
export function formatGpus(node: Pick<NodeView, "gpuCount" | "gpuModel" | "gpus">): string {
  if (node.gpuCount === 0) return "CPU only";
  const model = node.gpuModel ?? node.gpus[0]?.name ?? "unrecognized GPU";
  return `${node.gpuCount} × ${model}`;
}

/** "$15.92" from a 6-decimal USD string, keeping every non-zero decimal ("$0.0025"); "—" for null. */
export function formatUsd(amount: string | null): string {
  if (amount === null) return "—";
  return `$${amount.replace(/(\.\d\d\d*?)0+$/, "$1")}`;
}

/** Each engine a worker can report, as people know it (src/protocol/hardware.ts `Engine`). */
const ENGINE_NAMES: Record<string, string> = {
  torch: "PyTorch",
  dask: "Dask",
  ray: "Ray",
  podman: "Podman (containers)",
};

/**
 * A node's engines (its worker's hardware report) in words: "PyTorch, Dask, Podman (containers)";
 * none found; or not reported by a worker from before engines were reported (placement then takes
 * the node as able to run every kind: README, "Rent a cluster").
 */
export function formatEngines(engines: readonly string[] | null): string {
  if (engines === null) return "not reported (an older worker: placed as able to run every kind)";
  if (engines.length === 0) return "none found: plain commands only";
  return engines.map((engine) => ENGINE_NAMES[engine] ?? engine).join(", ");
}

/**
 * "4,566.210045 TDM" from the API's 6-decimal string: the whole part grouped, every decimal kept
 * (the string is exact; a float would lose units past 2^53).
 */
export function formatTdm(amount: string): string {
  const [whole = "0", decimals] = amount.split(".");
  const sign = whole.startsWith("-") ? "-" : "";
  const digits = whole.replace(/^-/, "").replace(/\B(?=(\d{3})+(?!\d))/g, ",");
  return `${sign}${digits}${decimals === undefined ? "" : `.${decimals}`} TDM`;
}
