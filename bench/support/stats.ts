import { execFileSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { cpus, loadavg } from "node:os";

export interface LatencySummary {
  n: number;
  p50: number;
  p95: number;
  p99: number;
  max: number;
}

/** Nearest-rank percentiles of latency samples (ms), rounded to 0.01 ms. */
export function summarize(samplesMs: readonly number[]): LatencySummary {
  const sorted = [...samplesMs].sort((a, b) => a - b);
  const at = (p: number) =>
    round2(sorted[Math.max(0, Math.ceil((p / 100) * sorted.length) - 1)] ?? NaN);
  return { n: sorted.length, p50: at(50), p95: at(95), p99: at(99), max: at(100) };
}

export function round2(x: number): number {
  return Math.round(x * 100) / 100;
}

/** What a figure was measured on, for bench/RESULTS.md. */
export function machine() {
  const model = /model name\s*:\s*(.*)/.exec(readFileSync("/proc/cpuinfo", "utf8"))?.[1];
  return {
    cpu: model ?? cpus()[0]?.model ?? "unknown",
    cores: cpus().length,
    node: process.version,
    date: new Date().toISOString(),
    /** 1-minute load average: other work on a shared machine shows here. */
    loadAvg1m: round2(loadavg()[0] ?? NaN),
  };
}

/** A progress line on stderr (stdout carries only the result). */
export function progress(message: string): void {
  process.stderr.write(`[${new Date().toISOString().slice(11, 19)}] ${message}\n`);
}

/** This process's open-file limit (a shell started by it inherits it). */
export function openFileLimit(): number {
  return Number(execFileSync("sh", ["-c", "ulimit -n"], { encoding: "utf8" }).trim());
}
