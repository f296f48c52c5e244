/**
 * The GPU models the network knows. Verification compares a node's measured speed and VRAM with
 * its claimed model's entry here, the catalog pricing mode prices per model, and search filters by
 * model, VRAM and TEE capability.
 *
 * Figures are NVIDIA's datasheet / architecture-whitepaper peaks at boost clock:
 * - `fp32Tflops`: non-tensor FP32.
 * - `tensorTflops`: dense (no 2:4 sparsity) FP16 tensor throughput with FP32 accumulate, the mode
 *   mixed-precision training runs in. GeForce cards run that mode at half their FP16-accumulate
 *   rate (e.g. RTX 4090: 165.2, not 330.3); workstation and data-center cards run it at full rate.
 * - `vramMiB`: nominal capacity (GB × 1024). nvidia-smi reports slightly less (driver reservation,
 *   ECC), e.g. 81559 for an H100 80GB, 24564 for an RTX 4090: compare with a tolerance.
 *
 * The first five entries are meant to be the cards in the table of io.net's research paper (May
 * 2024). That table could not be found in the reference corpus, so they are the stand-in set:
 * H100 80GB, A100 80GB, RTX 4090, RTX 3080, RTX A5000. The paper also names the RTX 4080, the
 * A100 40GB and the H100 PCIe, the last three entries (Ada and Hopper whitepapers, A100 datasheet:
 * the A100 40GB SXM4 and PCIe parts share the 80GB part's peaks; the H100 PCIe runs slower clocks,
 * fewer SMs and HBM2e, so it is its own model, not an H100 80GB).
 */

/** One GPU model. */
export interface GpuModel {
  /** Stable kebab-case id, e.g. "rtx-4090", "h100-80gb". */
  id: string;
  /** Display name. */
  name: string;
  /** Peak non-tensor FP32 TFLOPS. */
  fp32Tflops: number;
  /** Peak dense FP16 tensor TFLOPS (FP32 accumulate). */
  tensorTflops: number;
  /** Nominal VRAM in MiB. */
  vramMiB: number;
  /** "datacenter": data-center SKUs; "consumer": desk cards (GeForce, RTX A-series workstation). */
  tier: "consumer" | "datacenter";
  /** Supports NVIDIA confidential computing (a TEE covering GPU memory). */
  teeCapable: boolean;
}

export const GPU_MODEL_IDS = [
  "h100-80gb",
  "a100-80gb",
  "rtx-4090",
  "rtx-3080",
  "rtx-a5000",
  "rtx-3060-ti",
  "rtx-3070",
  "rtx-3090",
  "rtx-4070",
  "rtx-a4000",
  "rtx-a6000",
  "l40s",
  "h200",
  "rtx-4080",
  "a100-40gb",
  "h100-pcie",
] as const;
export type GpuModelId = (typeof GPU_MODEL_IDS)[number];

type CatalogEntry = GpuModel & { id: GpuModelId };

const GIB = 1024;

/**
 * RTX 3080: the 10 GB card's figures; the 12 GB card prints the same nvidia-smi name. The RTX 4080
 * SUPER (52.2 / 104.4 TFLOPS) prints its own name and is not an RTX 4080 here.
 */
const ENTRIES: readonly CatalogEntry[] = [
  {
    id: "h100-80gb",
    name: "NVIDIA H100 80GB (SXM5)",
    fp32Tflops: 67,
    tensorTflops: 989.4,
    vramMiB: 80 * GIB,
    tier: "datacenter",
    teeCapable: true,
  },
  {
    id: "a100-80gb",
    name: "NVIDIA A100 80GB",
    fp32Tflops: 19.5,
    tensorTflops: 312,
    vramMiB: 80 * GIB,
    tier: "datacenter",
    teeCapable: false,
  },
  {
    id: "rtx-4090",
    name: "NVIDIA GeForce RTX 4090",
    fp32Tflops: 82.6,
    tensorTflops: 165.2,
    vramMiB: 24 * GIB,
    tier: "consumer",
    teeCapable: false,
  },
  {
    id: "rtx-3080",
    name: "NVIDIA GeForce RTX 3080",
    fp32Tflops: 29.8,
    tensorTflops: 59.5,
    vramMiB: 10 * GIB,
    tier: "consumer",
    teeCapable: false,
  },
  {
    id: "rtx-a5000",
    name: "NVIDIA RTX A5000",
    fp32Tflops: 27.8,
    tensorTflops: 111.1,
    vramMiB: 24 * GIB,
    tier: "consumer",
    teeCapable: false,
  },
  {
    id: "rtx-3060-ti",
    name: "NVIDIA GeForce RTX 3060 Ti",
    fp32Tflops: 16.2,
    tensorTflops: 32.4,
    vramMiB: 8 * GIB,
    tier: "consumer",
    teeCapable: false,
  },
  {
    id: "rtx-3070",
    name: "NVIDIA GeForce RTX 3070",
    fp32Tflops: 20.3,
    tensorTflops: 40.6,
    vramMiB: 8 * GIB,
    tier: "consumer",
    teeCapable: false,
  },
  {
    id: "rtx-3090",
    name: "NVIDIA GeForce RTX 3090",
    fp32Tflops: 35.6,
    tensorTflops: 71.2,
    vramMiB: 24 * GIB,
    tier: "consumer",
    teeCapable: false,
  },
  {
    id: "rtx-4070",
    name: "NVIDIA GeForce RTX 4070",
    fp32Tflops: 29.1,
    tensorTflops: 58.3,
    vramMiB: 12 * GIB,
    tier: "consumer",
    teeCapable: false,
  },
  {
    id: "rtx-a4000",
    name: "NVIDIA RTX A4000",
    fp32Tflops: 19.2,
    tensorTflops: 76.7,
    vramMiB: 16 * GIB,
    tier: "consumer",
    teeCapable: false,
  },
  {
    id: "rtx-a6000",
    name: "NVIDIA RTX A6000",
    fp32Tflops: 38.7,
    tensorTflops: 154.8,
    vramMiB: 48 * GIB,
    tier: "consumer",
    teeCapable: false,
  },
  {
    id: "l40s",
    name: "NVIDIA L40S",
    fp32Tflops: 91.6,
    tensorTflops: 362.05,
    vramMiB: 48 * GIB,
    tier: "datacenter",
    teeCapable: false,
  },
  {
    id: "h200",
    name: "NVIDIA H200 (SXM)",
    fp32Tflops: 67,
    tensorTflops: 989.4,
    vramMiB: 141 * GIB,
    tier: "datacenter",
    teeCapable: true,
  },
  {
    id: "rtx-4080",
    name: "NVIDIA GeForce RTX 4080",
    fp32Tflops: 48.7,
    tensorTflops: 97.5,
    vramMiB: 16 * GIB,
    tier: "consumer",
    teeCapable: false,
  },
  {
    id: "a100-40gb",
    name: "NVIDIA A100 40GB",
    fp32Tflops: 19.5,
    tensorTflops: 312,
    vramMiB: 40 * GIB,
    tier: "datacenter",
    teeCapable: false,
  },
  {
    id: "h100-pcie",
    name: "NVIDIA H100 PCIe",
    fp32Tflops: 51.2,
    tensorTflops: 756.5,
    vramMiB: 80 * GIB,
    tier: "datacenter",
    teeCapable: true,
  },
];

export const GPU_CATALOG: readonly GpuModel[] = Object.freeze(ENTRIES.map((m) => Object.freeze(m)));

/**
 * The exact names nvidia-smi prints for each model, normalized by `normalizeSmiName`. Matching is
 * exact, never by substring: "RTX 3060 Ti" must not pass for a 3060, "RTX 3080 Ti" or "RTX 3080
 * Laptop GPU" for a 3080, nor "H100 PCIe" / "H100 NVL" / "H200 NVL" (different clocks, memory and
 * power) for the SXM parts. A variant not listed here is unknown until it gets its own entry.
 */
const SMI_NAMES: Readonly<Record<GpuModelId, readonly string[]>> = {
  "h100-80gb": ["h100 80gb hbm3"],
  "a100-80gb": ["a100-sxm4-80gb", "a100 80gb pcie"],
  "rtx-4090": ["rtx 4090"],
  "rtx-3080": ["rtx 3080"],
  "rtx-a5000": ["rtx a5000"],
  "rtx-3060-ti": ["rtx 3060 ti"],
  "rtx-3070": ["rtx 3070"],
  "rtx-3090": ["rtx 3090"],
  "rtx-4070": ["rtx 4070"],
  "rtx-a4000": ["rtx a4000"],
  "rtx-a6000": ["rtx a6000"],
  l40s: ["l40s"],
  h200: ["h200"],
  "rtx-4080": ["rtx 4080"],
  "a100-40gb": ["a100-sxm4-40gb", "a100-pcie-40gb"],
  "h100-pcie": ["h100 pcie"],
};

const BY_ID = new Map<string, GpuModel>(GPU_CATALOG.map((m) => [m.id, m]));

const BY_SMI_NAME = new Map<string, GpuModel>(
  ENTRIES.flatMap((m) => SMI_NAMES[m.id].map((n) => [n, m] as const)),
);

/**
 * Lower-cases, collapses whitespace and drops the vendor prefixes that vary by driver generation
 * (drivers before R470 print "GeForce RTX 3080" without "NVIDIA ").
 */
function normalizeSmiName(name: string): string {
  return name
    .trim()
    .toLowerCase()
    .replace(/\s+/g, " ")
    .replace(/^nvidia /, "")
    .replace(/^geforce /, "");
}

export function gpuModelById(id: string): GpuModel | undefined {
  return BY_ID.get(id);
}

/** The model for a name as `nvidia-smi --query-gpu=name` prints it; undefined when unknown. */
export function gpuModelByName(nvidiaSmiName: string): GpuModel | undefined {
  return BY_SMI_NAME.get(normalizeSmiName(nvidiaSmiName));
}
