import assert from "node:assert/strict";
import { describe, it } from "node:test";
import type { HardwareReport } from "../../protocol/hardware.ts";
import { parseWorkerConfig } from "../config.ts";
import { hostReserveMiB, rankLimits, resolveOffer } from "./offer.ts";

const machine: HardwareReport = {
  cpu: { model: "test", cores: 8, arch: "x64" },
  memoryTotalMiB: 32_768,
  diskFreeMiB: 100_000,
  os: { platform: "linux", release: "6", distro: "test" },
  gpus: [],
};
const config = (extra: Record<string, unknown> = {}) =>
  parseWorkerConfig({
    home: "/tmp/w",
    coordinatorUrl: "http://127.0.0.1:1",
    region: "eu",
    zone: "a",
    ...extra,
  });

describe("worker offer", () => {
  it("defaults from the machine: memory minus a host reserve, all cores, 4096 pids, half the free disk", () => {
    assert.deepEqual(resolveOffer(config(), machine), {
      memoryMiB: 32_768 - 3_276,
      cpuCores: 8,
      pids: 4096,
      diskMiB: 50_000,
    });
    assert.equal(hostReserveMiB(2048), 512, "at least 512 MiB");
    assert.equal(hostReserveMiB(600), 300, "at most half");
  });

  it("parses --max-* sizes with units (powers of 1024; a bare number is MiB)", () => {
    const offer = resolveOffer(
      config({ maxMemoryMiB: "8GiB", maxCpus: 2.5, maxPids: 512, maxDiskMiB: "1.5T" }),
      { ...machine, diskFreeMiB: 2_000_000 },
    );
    assert.deepEqual(offer, { memoryMiB: 8192, cpuCores: 2.5, pids: 512, diskMiB: 1_572_864 });
    assert.equal(config({ maxMemoryMiB: "512m" }).maxMemoryMiB, 512);
    assert.equal(config({ maxMemoryMiB: "2G" }).maxMemoryMiB, 2048);
    assert.equal(config({ maxDiskMiB: 700 }).maxDiskMiB, 700);
  });

  it("fails fast, naming the setting, on a bad size or an offer beyond the machine", () => {
    assert.throws(() => config({ maxMemoryMiB: "lots" }), /maxMemoryMiB: expected a size/);
    assert.throws(() => config({ maxMemoryMiB: "10MiB" }), /maxMemoryMiB/);
    assert.throws(() => config({ maxPids: 4 }), /maxPids/);
    assert.throws(
      () => resolveOffer(config({ maxMemoryMiB: "64G" }), machine),
      /--max-memory 65536 MiB is more than this machine has \(32768 MiB\)/,
    );
    assert.throws(() => resolveOffer(config({ maxCpus: 9 }), machine), /--max-cpus 9/);
    assert.throws(() => resolveOffer(config({ maxDiskMiB: "1T" }), machine), /--max-disk/);
  });

  it("a rank gets its cluster's ask within the offer, the offer where it asks nothing", () => {
    const offer = { memoryMiB: 4096, cpuCores: 4, pids: 4096, diskMiB: 10_000 };
    assert.deepEqual(rankLimits(offer, undefined), { ok: true, limits: offer });
    assert.deepEqual(rankLimits(offer, { memoryMiB: 1024, cpuCores: undefined }), {
      ok: true,
      limits: { ...offer, memoryMiB: 1024 },
    });
    assert.deepEqual(rankLimits(offer, { diskMiB: 20_000 }), {
      ok: false,
      message: "the cluster asks diskMiB 20000, more than this node offers (10000)",
    });
  });
});
