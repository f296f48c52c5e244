import { GPU_CATALOG } from "../../../core/gpu-catalog.ts";
import { formatMoney, units } from "../../../core/money.ts";
import { CPU_ONLY_MODEL } from "../../../core/placement.ts";
import { DEFAULT_CATALOG_PRICES } from "../../../core/pricing.ts";
import { REGIONS } from "../../../core/regions.ts";
import { CatalogGpus, CatalogRegions } from "../../../protocol/catalog.ts";
import type { ZodApp } from "../server.ts";

const usd = (microUsd: bigint) => formatMoney(units(microUsd));

/** What filters and `worker start` take: GPU models (with catalog prices) and regions with zones. */
export function catalogRoutes(app: ZodApp): void {
  const prices = DEFAULT_CATALOG_PRICES;
  const gpus: CatalogGpus = {
    gpus: GPU_CATALOG.map((m) => {
      const price = prices.perGpuHour[m.id];
      return {
        id: m.id,
        name: m.name,
        vramMiB: m.vramMiB,
        tensorTflops: m.tensorTflops,
        fp32Tflops: m.fp32Tflops,
        tier: m.tier,
        teeCapable: m.teeCapable,
        catalogPerGpuHour: price === undefined ? null : usd(price),
      };
    }),
    cpuOnly: { id: CPU_ONLY_MODEL, catalogPerNodeHour: usd(prices.cpuNodeHour) },
  };
  const regions: CatalogRegions = {
    regions: REGIONS.map((r) => ({ id: r.id, name: r.name, zones: [...r.zones] })),
  };
  app.get(
    "/v1/catalog/gpus",
    {
      schema: {
        tags: ["catalog"],
        summary:
          "GPU models the network knows (the ids --gpu takes), their figures and catalog prices",
        response: { 200: CatalogGpus },
      },
    },
    () => gpus,
  );
  app.get(
    "/v1/catalog/regions",
    {
      schema: {
        tags: ["catalog"],
        summary: "Regions and their zones (what filters and worker registration take)",
        response: { 200: CatalogRegions },
      },
    },
    () => regions,
  );
}
