import type { Command } from "commander";
import { clientFor } from "../context.ts";
import { printFields, printJson, printTable } from "../output.ts";
import { withClientOptions, type ClientOptions } from "./common.ts";
import { registerBlocksCommand } from "./rewards.ts";

/** `tandem token supply|emission|blocks`: the native token's public figures. */
export function registerTokenCommands(program: Command): void {
  const token = program.command("token").description("the native token, TDM");

  withClientOptions(
    token
      .command("supply")
      .description("TDM's supply: maximum, genesis, emitted, burned, total, staked, circulating"),
    { apiKey: false },
  ).action(async (options: ClientOptions) => {
    const supply = await (await clientFor(options)).tokenSupply();
    if (options.json) return printJson(supply);
    printFields([
      ["max supply", `${supply.maxSupply} TDM`],
      ["genesis", `${supply.genesis} TDM`],
      ["emitted", `${supply.emitted} TDM`],
      ["burned", `${supply.burned} TDM`],
      ["total supply", `${supply.totalSupply} TDM`],
      ["staked", `${supply.staked} TDM`],
      ["circulating", `${supply.circulating} TDM`],
    ]);
  });

  withClientOptions(
    token
      .command("emission")
      .description("the emission schedule: each of the 20 years' TDM, and what this hour emits"),
    { apiKey: false },
  ).action(async (options: ClientOptions) => {
    const emission = await (await clientFor(options)).tokenEmission();
    if (options.json) return printJson(emission);
    printTable(emission.years, [
      ["YEAR", (y) => String(y.year)],
      ["TOTAL (TDM)", (y) => y.total],
    ]);
    process.stdout.write("\n");
    printFields([
      ["genesis", emission.genesisAt],
      ["hour", `${emission.hour} since genesis`],
      ["this hour", `${emission.hourly} TDM`],
    ]);
  });

  registerBlocksCommand(token);
}
