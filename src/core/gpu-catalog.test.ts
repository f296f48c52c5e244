import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { GPU_CATALOG, GPU_MODEL_IDS, gpuModelById, gpuModelByName } from "./gpu-catalog.ts";
import { DEFAULT_CATALOG_PRICES } from "./pricing.ts";

/** Names exactly as nvidia-smi prints them on each catalog card. */
const SMI_NAME_OF: Record<string, readonly string[]> = {
  "h100-80gb": ["NVIDIA H100 80GB HBM3"],
  "a100-80gb": ["NVIDIA A100-SXM4-80GB", "NVIDIA A100 80GB PCIe"],
  "rtx-4090": ["NVIDIA GeForce RTX 4090"],
  "rtx-3080": ["NVIDIA GeForce RTX 3080", "GeForce RTX 3080"],
  "rtx-a5000": ["NVIDIA RTX A5000"],
  "rtx-3060-ti": ["NVIDIA GeForce RTX 3060 Ti"],
  "rtx-3070": ["NVIDIA GeForce RTX 3070"],
  "rtx-3090": ["NVIDIA GeForce RTX 3090"],
  "rtx-4070": ["NVIDIA GeForce RTX 4070"],
  "rtx-a4000": ["NVIDIA RTX A4000"],
  "rtx-a6000": ["NVIDIA RTX A6000"],
  l40s: ["NVIDIA L40S"],
  h200: ["NVIDIA H200"],
  "rtx-4080": ["NVIDIA GeForce RTX 4080"],
  "a100-40gb": ["NVIDIA A100-SXM4-40GB", "NVIDIA A100-PCIE-40GB"],
  "h100-pcie": ["NVIDIA H100 PCIe"],
};

describe("GPU catalog", () => {
  it("lists every id once, in GPU_MODEL_IDS order, all kebab-case", () => {
    assert.deepEqual(
      GPU_CATALOG.map((m) => m.id),
      [...GPU_MODEL_IDS],
    );
    assert.equal(new Set(GPU_MODEL_IDS).size, GPU_MODEL_IDS.length);
    for (const id of GPU_MODEL_IDS) assert.match(id, /^[a-z0-9]+(-[a-z0-9]+)*$/);
  });

  it("has plausible figures", () => {
    for (const m of GPU_CATALOG) {
      assert.ok(m.fp32Tflops > 10 && m.fp32Tflops < 100, m.id);
      assert.ok(m.tensorTflops > m.fp32Tflops, m.id);
      assert.ok(m.vramMiB >= 8 * 1024 && m.vramMiB <= 141 * 1024, m.id);
    }
  });

  it("marks only Hopper parts (H100 SXM and PCIe, H200) TEE-capable", () => {
    assert.deepEqual(
      GPU_CATALOG.filter((m) => m.teeCapable).map((m) => m.id),
      ["h100-80gb", "h200", "h100-pcie"],
    );
  });

  it("is frozen", () => {
    assert.ok(Object.isFrozen(GPU_CATALOG));
    assert.ok(GPU_CATALOG.every((m) => Object.isFrozen(m)));
  });

  it("tells the paper's models from their bigger siblings", () => {
    const h100Pcie = gpuModelByName("NVIDIA H100 PCIe");
    const h100Sxm = gpuModelByName("NVIDIA H100 80GB HBM3");
    assert.ok(h100Pcie && h100Sxm);
    assert.deepEqual([h100Pcie.fp32Tflops, h100Pcie.tensorTflops], [51.2, 756.5]);
    assert.ok(h100Pcie.tensorTflops < h100Sxm.tensorTflops);
    assert.equal(h100Pcie.vramMiB, h100Sxm.vramMiB);
    const a100 = gpuModelByName("NVIDIA A100-PCIE-40GB");
    assert.deepEqual([a100?.id, a100?.vramMiB, a100?.tensorTflops], ["a100-40gb", 40 * 1024, 312]);
    const rtx4080 = gpuModelByName("NVIDIA GeForce RTX 4080");
    assert.deepEqual(
      [rtx4080?.fp32Tflops, rtx4080?.tensorTflops, rtx4080?.vramMiB],
      [48.7, 97.5, 16 * 1024],
    );
  });

  it("prices every model, a smaller sibling below the bigger one", () => {
    const price = DEFAULT_CATALOG_PRICES.perGpuHour;
    assert.deepEqual(Object.keys(price).sort(), [...GPU_MODEL_IDS].sort());
    for (const [cheaper, dearer] of [
      ["h100-pcie", "h100-80gb"],
      ["a100-80gb", "h100-pcie"],
      ["a100-40gb", "a100-80gb"],
      ["rtx-4070", "rtx-4080"],
      ["rtx-4080", "rtx-4090"],
    ] as const)
      assert.ok(price[cheaper]! < price[dearer]!, `${cheaper} < ${dearer}`);
  });

  it("finds models by id", () => {
    assert.equal(gpuModelById("rtx-4090")?.vramMiB, 24 * 1024);
    assert.equal(gpuModelById("h100-80gb")?.tier, "datacenter");
    assert.equal(gpuModelById("rtx-5090"), undefined);
    assert.equal(gpuModelById(""), undefined);
  });

  it("maps every catalog card's nvidia-smi name to it", () => {
    for (const id of GPU_MODEL_IDS) {
      const names = SMI_NAME_OF[id];
      assert.ok(names, `test table lacks ${id}`);
      for (const name of names) assert.equal(gpuModelByName(name)?.id, id, name);
    }
  });

  it("tolerates case and whitespace differences", () => {
    assert.equal(gpuModelByName("  nvidia geforce  rtx 3060 ti\n")?.id, "rtx-3060-ti");
  });

  it("does not map look-alikes", () => {
    for (const name of [
      "NVIDIA GeForce RTX 3060",
      "NVIDIA GeForce RTX 3060 Ti Laptop GPU",
      "NVIDIA GeForce RTX 3080 Ti",
      "NVIDIA GeForce RTX 3080 Laptop GPU",
      "NVIDIA GeForce RTX 3090 Ti",
      "NVIDIA GeForce RTX 4070 Ti",
      "NVIDIA GeForce RTX 4070 SUPER",
      "NVIDIA GeForce RTX 4090 D",
      "NVIDIA GeForce RTX 4080 SUPER",
      "NVIDIA GeForce RTX 4080 Laptop GPU",
      "NVIDIA H100 NVL",
      "NVIDIA H100 PCIe MIG 1g.10gb",
      "NVIDIA H200 NVL",
      "NVIDIA A100-SXM4-40GB MIG 1g.5gb",
      "NVIDIA A100 40GB PCIe",
      "NVIDIA L40",
      "NVIDIA RTX 6000 Ada Generation",
      "NVIDIA RTX A4000 Laptop GPU",
      "Tesla T4",
      "",
    ]) {
      assert.equal(gpuModelByName(name), undefined, name);
    }
  });
});
