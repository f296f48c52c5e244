import { Command, CommanderError } from "commander";
import { registerAccountCommands, registerDeviceCommands } from "./commands/accounts.ts";
import { registerCatalogCommands } from "./commands/catalog.ts";
import { registerClusterCommands } from "./commands/clusters.ts";
import { reportError } from "./commands/common.ts";
import { registerCoordinatorCommand } from "./commands/coordinator.ts";
import { registerDevCommand } from "./commands/dev.ts";
import {
  registerNetworkCommands,
  registerNodeCommands,
  registerNodePriceCommand,
} from "./commands/nodes.ts";
import { registerTokenCommands } from "./commands/token.ts";
import { registerAdminCommands, registerWalletCommands } from "./commands/wallet.ts";
import { registerWorkerCommands } from "./commands/worker.ts";

/** The whole `tandem` command tree; the README's CLI reference is generated from it. */
export function buildProgram(): Command {
  const program = new Command("tandem")
    .description("Tandem: an open, decentralized GPU compute network")
    .version("0.1.0")
    .showHelpAfterError()
    .exitOverride();
  registerDevCommand(program);
  registerCoordinatorCommand(program);
  registerWorkerCommands(program);
  registerAccountCommands(program);
  registerNodeCommands(program);
  registerNodePriceCommand(program);
  registerNetworkCommands(program);
  registerCatalogCommands(program);
  registerClusterCommands(program);
  registerDeviceCommands(program);
  registerWalletCommands(program);
  registerTokenCommands(program);
  registerAdminCommands(program);
  return program;
}

/** Runs the CLI with `process.argv`-shaped arguments; errors become a message and an exit code. */
export async function run(argv: string[]): Promise<void> {
  const program = buildProgram();
  try {
    await program.parseAsync(argv);
  } catch (error) {
    if (error instanceof CommanderError) {
      process.exitCode = error.exitCode;
      return;
    }
    reportError(error, argv.includes("--json"));
  }
}
