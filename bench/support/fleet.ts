/**
 * A synthetic fleet for benchmarks: accounts, devices and nodes with a realistic spread of GPU
 * models, GPU counts, regions, zones, statuses, uptime and VRAM, written straight into the store
 * in one transaction (seconds for 100,000 nodes, where 100,000 signed HTTP registrations would take
 * minutes). The spread comes from a seeded generator, so two runs build the same network.
 */
import { randomBytes, randomUUID } from "node:crypto";
import type { Insertable, Kysely } from "kysely";
import type { Database, DevicesTable, NodesTable } from "../../src/coordinator/store/schema.ts";
import { GPU_CATALOG, gpuModelByName, type GpuModel } from "../../src/core/gpu-catalog.ts";
import type { NodeStatus } from "../../src/core/node-status.ts";
import { REGIONS } from "../../src/core/regions.ts";
import type { HardwareReport } from "../../src/protocol/hardware.ts";
import { IdPrefix, newId } from "../../src/protocol/ids.ts";

export interface FleetOptions {
  count: number;
  nowMs: number;
  /** Seed of the attribute generator (default 1). */
  seed?: number;
  /** The device's raw Ed25519 public key (base64url) by index; random bytes when nobody connects. */
  publicKeyOf?: (index: number) => string;
  /** Every node starts offline and verified, as before its worker reconnects (default: the spread). */
  allOffline?: boolean;
}

export interface SeededNode {
  deviceId: string;
  nodeId: string;
  gpuCount: number;
}

/** How nvidia-smi names each catalog card (what a worker reports). */
const SMI_NAME: Record<string, string> = {
  "h100-80gb": "NVIDIA H100 80GB HBM3",
  "a100-80gb": "NVIDIA A100-SXM4-80GB",
  "rtx-4090": "NVIDIA GeForce RTX 4090",
  "rtx-3080": "NVIDIA GeForce RTX 3080",
  "rtx-a5000": "NVIDIA RTX A5000",
  "rtx-3060-ti": "NVIDIA GeForce RTX 3060 Ti",
  "rtx-3070": "NVIDIA GeForce RTX 3070",
  "rtx-3090": "NVIDIA GeForce RTX 3090",
  "rtx-4070": "NVIDIA GeForce RTX 4070",
  "rtx-a4000": "NVIDIA RTX A4000",
  "rtx-a6000": "NVIDIA RTX A6000",
  l40s: "NVIDIA L40S",
  h200: "NVIDIA H200",
  "rtx-4080": "NVIDIA GeForce RTX 4080",
  "a100-40gb": "NVIDIA A100-SXM4-40GB",
  "h100-pcie": "NVIDIA H100 PCIe",
};

/** A community network: mostly consumer cards, a tail of data-center parts, some CPU-only nodes. */
const MODEL_WEIGHTS: Record<string, number> = {
  "rtx-4090": 20,
  "rtx-3090": 12,
  "rtx-3080": 10,
  "rtx-3060-ti": 8,
  "rtx-3070": 8,
  "rtx-4070": 6,
  "rtx-a4000": 4,
  "rtx-a5000": 4,
  "rtx-a6000": 4,
  "a100-80gb": 8,
  "h100-80gb": 8,
  l40s: 4,
  h200: 2,
};
const CPU_ONLY_SHARE = 0.08;

const REGION_WEIGHTS: Record<string, number> = {
  "us-east": 18,
  "us-west": 12,
  "us-central": 8,
  "ca-central": 4,
  "eu-west": 14,
  "eu-central": 10,
  "eu-north": 5,
  "ap-southeast": 8,
  "ap-northeast": 7,
  "ap-south": 5,
  "sa-east": 4,
  "af-south": 2,
  "me-central": 3,
};

const STATUS_WEIGHTS: Record<NodeStatus, number> = {
  available: 50,
  offline: 25,
  leased: 14,
  unverified: 8,
  standby: 2,
  revoked: 1,
};

const DAY_MS = 86_400_000;
/** Rows per INSERT: 17 columns × 1,000 stays under both SQLite's and PostgreSQL's bound-parameter cap. */
const BATCH = 1000;

/** Inserts `count` nodes (one device and one node each) in one transaction; answers their ids. */
export async function seedFleet(
  db: Kysely<Database>,
  options: FleetOptions,
): Promise<SeededNode[]> {
  const random = mulberry32(options.seed ?? 1);
  const accounts = Array.from({ length: Math.max(1, Math.ceil(options.count / 50)) }, () =>
    newId(IdPrefix.account, options.nowMs),
  );
  const devices: Insertable<DevicesTable>[] = [];
  const nodes: Insertable<NodesTable>[] = [];
  const seeded: SeededNode[] = [];
  // Nodes register over 180 days; rows go in in that order, as they would have (ids sort by time).
  const registrations = Array.from(
    { length: options.count },
    () => options.nowMs - Math.floor(random() * 180 * DAY_MS),
  ).sort((a, b) => a - b);
  for (let i = 0; i < options.count; i++) {
    const registeredAt = registrations[i]!;
    const deviceId = newId(IdPrefix.device, registeredAt);
    const nodeId = newId(IdPrefix.node, registeredAt);
    const accountId = accounts[Math.floor(random() * accounts.length)]!;
    const status: NodeStatus = options.allOffline ? "offline" : pick(random, STATUS_WEIGHTS);
    const regionId = pick(random, REGION_WEIGHTS);
    const region = REGIONS.find((r) => r.id === regionId)!;
    const hardware = hardwareReport(random);
    const memories = hardware.gpus.map((g) => g.memoryTotalMiB);
    const online = status !== "offline" && status !== "revoked";
    const uptime30d = online ? 1 - 0.4 * random() ** 3 : 0.9 * random();
    const uptime7d = clamp01(uptime30d + (random() - 0.5) * 0.1);
    devices.push({
      id: deviceId,
      account_id: accountId,
      public_key: options.publicKeyOf?.(i) ?? randomBytes(32).toString("base64url"),
      status: status === "revoked" ? "revoked" : "active",
      created_at: registeredAt,
      revoked_at: status === "revoked" ? options.nowMs : null,
    });
    nodes.push({
      id: nodeId,
      device_id: deviceId,
      account_id: accountId,
      status,
      region: region.id,
      zone: region.zones[Math.floor(random() * region.zones.length)]!,
      hardware: JSON.stringify(hardware),
      gpu_model: hardware.gpus[0] ? gpuModelByName(hardware.gpus[0].name)!.id : null,
      gpu_count: hardware.gpus.length,
      vram_mib: memories.length === 0 ? 0 : Math.min(...memories),
      flags: "",
      verified_at: status === "unverified" ? null : registeredAt + 60_000,
      registered_at: registeredAt,
      last_seen_at: options.allOffline ? null : options.nowMs - (online ? 0 : DAY_MS),
      uptime_24h: clamp01(online ? uptime7d + (random() - 0.3) * 0.05 : uptime7d - 0.3),
      uptime_7d: uptime7d,
      uptime_30d: uptime30d,
    });
    seeded.push({ deviceId, nodeId, gpuCount: hardware.gpus.length });
  }

  await db.transaction().execute(async (tx) => {
    const rows = accounts.map((id) => ({
      id,
      roles: "supplier",
      created_at: options.nowMs,
      disabled_at: null,
    }));
    for (let i = 0; i < rows.length; i += BATCH)
      await tx
        .insertInto("accounts")
        .values(rows.slice(i, i + BATCH))
        .execute();
    for (let i = 0; i < devices.length; i += BATCH) {
      await tx
        .insertInto("devices")
        .values(devices.slice(i, i + BATCH))
        .execute();
      await tx
        .insertInto("nodes")
        .values(nodes.slice(i, i + BATCH))
        .execute();
    }
  });
  return seeded;
}

function hardwareReport(random: () => number): HardwareReport {
  const cpuOnly = random() < CPU_ONLY_SHARE;
  const modelId = cpuOnly ? undefined : pick(random, MODEL_WEIGHTS);
  const model = GPU_CATALOG.find((m) => m.id === modelId);
  const gpuCount = model === undefined ? 0 : gpuCountFor(model, random());
  const cores = [8, 16, 32, 64, 128][Math.floor(random() * 5)]!;
  return {
    cpu: { model: "AMD EPYC 7763 64-Core Processor", cores, arch: "x64" },
    memoryTotalMiB: cores * 8 * 1024,
    diskFreeMiB: Math.floor(200_000 + random() * 2_000_000),
    os: { platform: "linux", release: "6.1.0-18-amd64", distro: "Debian GNU/Linux 12" },
    gpus: Array.from({ length: gpuCount }, (_, index) => ({
      index,
      uuid: `GPU-${randomUUID()}`,
      name: SMI_NAME[model!.id]!,
      // nvidia-smi reports a little less than the nominal size (driver reservation, ECC).
      memoryTotalMiB: model!.vramMiB - Math.round(model!.vramMiB * 0.0044),
      driverVersion: "550.54.14",
      pciBusId: `00000000:${(index + 1).toString(16).padStart(2, "0").toUpperCase()}:00.0`,
      utilizationPct: 0,
      temperatureC: 35,
    })),
  };
}

function gpuCountFor(model: GpuModel, r: number): number {
  if (model.tier === "datacenter") return r < 0.2 ? 1 : r < 0.3 ? 2 : r < 0.5 ? 4 : 8;
  return r < 0.7 ? 1 : r < 0.9 ? 2 : 4;
}

function pick<K extends string>(random: () => number, weights: Record<K, number>): K {
  const entries = Object.entries(weights) as [K, number][];
  let r = random() * entries.reduce((sum, [, w]) => sum + w, 0);
  for (const [key, weight] of entries) {
    r -= weight;
    if (r < 0) return key;
  }
  return entries.at(-1)![0];
}

function clamp01(x: number): number {
  return Math.min(1, Math.max(0, x));
}

/** A small seeded PRNG (Mulberry32): uniform in [0, 1). */
function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4_294_967_296;
  };
}

for (const model of GPU_CATALOG) {
  if (gpuModelByName(SMI_NAME[model.id] ?? "")?.id !== model.id)
    throw new Error(`bench fleet: no nvidia-smi name maps to catalog model ${model.id}`);
}
