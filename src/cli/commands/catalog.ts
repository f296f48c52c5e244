import type { Command } from "commander";
import { clientFor } from "../context.ts";
import { mib, printJson, printTable } from "../output.ts";
import { withClientOptions, type ClientOptions } from "./common.ts";

/** `tandem catalog gpus|regions`: the values filters and `worker start` take, from the coordinator. */
export function registerCatalogCommands(program: Command): void {
  const catalog = program
    .command("catalog")
    .description("what the network knows: GPU models and regions (the values filters take)");

  withClientOptions(
    catalog
      .command("gpus")
      .description("GPU models: id (what --gpu takes), name, VRAM, tensor TFLOPS, catalog price"),
    { apiKey: false },
  ).action(async (options: ClientOptions) => {
    const { gpus, cpuOnly } = await (await clientFor(options)).catalogGpus();
    if (options.json) return printJson({ gpus, cpuOnly });
    printTable(gpus, [
      ["ID", (g) => g.id],
      ["NAME", (g) => g.name],
      ["VRAM", (g) => mib(g.vramMiB)],
      ["TENSOR TFLOPS", (g) => String(g.tensorTflops)],
      ["PRICE/GPU-H (USD)", (g) => g.catalogPerGpuHour ?? "-"],
    ]);
    process.stdout.write(
      `\n--gpu ${cpuOnly.id}: CPU-only nodes, ${cpuOnly.catalogPerNodeHour} USD per node-hour\n`,
    );
  });

  withClientOptions(
    catalog
      .command("regions")
      .description("regions and their zones (what --region and --zone take)"),
    { apiKey: false },
  ).action(async (options: ClientOptions) => {
    const { regions } = await (await clientFor(options)).catalogRegions();
    if (options.json) return printJson({ regions });
    printTable(regions, [
      ["REGION", (r) => r.id],
      ["NAME", (r) => r.name],
      ["ZONES", (r) => r.zones.join(", ")],
    ]);
  });
}
