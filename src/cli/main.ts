import { Command, CommanderError } from "commander";

/** Adds some of the tree's top-level commands to `program`. */
type Register = (program: Command) => void;

/** Top-level commands registered together, and how to load the code that registers them. */
export interface CommandEntry {
  names: readonly string[];
  load: () => Promise<Register>;
}

/**
 * The command tree in help order. `tandem <command> …` loads only its own entry, so a command
 * loads what it needs and no more (the actions that run a coordinator or a worker import that code
 * when they run): `tandem nodes list` never loads the coordinator, and `tandem --version` loads
 * no command at all. Help and unknown commands load them all.
 */
export const COMMANDS: readonly CommandEntry[] = [
  {
    names: ["dev"],
    load: async () => (await import("./commands/dev.ts")).registerDevCommand,
  },
  {
    names: ["coordinator"],
    load: async () => (await import("./commands/coordinator.ts")).registerCoordinatorCommand,
  },
  {
    names: ["worker"],
    load: async () => (await import("./commands/worker.ts")).registerWorkerCommands,
  },
  {
    names: ["login", "account", "keys"],
    load: async () => (await import("./commands/accounts.ts")).registerAccountCommands,
  },
  {
    names: ["nodes"],
    load: async () => (await import("./commands/nodes.ts")).registerNodeCommands,
  },
  {
    names: ["node"],
    load: async () => (await import("./commands/nodes.ts")).registerNodePriceCommand,
  },
  {
    names: ["network"],
    load: async () => (await import("./commands/nodes.ts")).registerNetworkCommands,
  },
  {
    names: ["catalog"],
    load: async () => (await import("./commands/catalog.ts")).registerCatalogCommands,
  },
  {
    names: ["search", "cluster"],
    load: async () => (await import("./commands/clusters.ts")).registerClusterCommands,
  },
  {
    names: ["devices"],
    load: async () => (await import("./commands/accounts.ts")).registerDeviceCommands,
  },
  {
    names: ["wallet"],
    load: async () => (await import("./commands/wallet.ts")).registerWalletCommands,
  },
  {
    names: ["token"],
    load: async () => (await import("./commands/token.ts")).registerTokenCommands,
  },
  {
    names: ["rewards"],
    load: async () => (await import("./commands/rewards.ts")).registerRewardsCommands,
  },
  {
    names: ["stake"],
    load: async () => (await import("./commands/stake.ts")).registerStakeCommands,
  },
  {
    names: ["admin"],
    load: async () => (await import("./commands/wallet.ts")).registerAdminCommands,
  },
];

/** `tandem` with the commands of `entries`. */
async function programOf(entries: readonly CommandEntry[]): Promise<Command> {
  const program = new Command("tandem")
    .description("Tandem: an open, decentralized GPU compute network")
    .version("0.1.0")
    .showHelpAfterError()
    .exitOverride();
  const registers = await Promise.all(entries.map((entry) => entry.load()));
  for (const register of registers) register(program);
  return program;
}

/** The whole `tandem` command tree; the README's CLI reference is generated from it. */
export function buildProgram(): Promise<Command> {
  return programOf(COMMANDS);
}

/** The entries `argv` needs: its command's alone, none for `--version`, else all (help). */
export function entriesFor(argv: readonly string[]): readonly CommandEntry[] {
  const first = argv[2];
  if (first === "--version" || first === "-V") return [];
  const entry = COMMANDS.find((e) => first !== undefined && e.names.includes(first));
  return entry === undefined ? COMMANDS : [entry];
}

/** Runs the CLI with `process.argv`-shaped arguments; errors become a message and an exit code. */
export async function run(argv: string[]): Promise<void> {
  const program = await programOf(entriesFor(argv));
  try {
    await program.parseAsync(argv);
  } catch (error) {
    if (error instanceof CommanderError) {
      process.exitCode = error.exitCode;
      return;
    }
    const { reportError } = await import("./commands/common.ts");
    await reportError(error, argv.includes("--json"));
  }
}
