import type { Command } from "commander";
import type { StakeView } from "../../protocol/stakes.ts";
import { clientFor } from "../context.ts";
import { printFields, printJson, printTable } from "../output.ts";
import {
  fetchPages,
  withClientOptions,
  withPaging,
  type ClientOptions,
  type PagingOptions,
} from "./common.ts";

interface KeyOptions extends ClientOptions {
  idempotencyKey?: string;
}

const KEY_HELP = "retry-safe key: the same key never moves stake twice (default: a fresh one)";

function printStake(stake: StakeView): void {
  printFields([
    ["stake", stake.id],
    ["node", stake.nodeId],
    ["amount", `${stake.amount} TDM`],
    ["status", stake.status],
    ["withdrawable", stake.withdrawableAt ?? "-"],
    ["transaction", stake.transactionId ?? "-"],
  ]);
}

/** `tandem stake …`: stake TDM on nodes, unstake, withdraw after the cooldown, commission. */
export function registerStakeCommands(program: Command): void {
  const stake = program
    .command("stake")
    .description("stake TDM on nodes (your own, or delegated to any node)");

  withClientOptions(
    stake
      .command("add")
      .description("stake TDM from your wallet on a node")
      .argument("<node>", "node id")
      .argument("<amount>", 'TDM, up to 6 decimals, e.g. "100" or "12.5"'),
  )
    .option("--idempotency-key <key>", KEY_HELP)
    .action(async (nodeId: string, amount: string, options: KeyOptions) => {
      const made = await (
        await clientFor(options)
      ).stake({ nodeId, amount }, options.idempotencyKey);
      if (options.json) return printJson(made);
      printStake(made);
    });

  withPaging(withClientOptions(stake.command("list").description("your stake positions")), 50, 500)
    .option("--node <id>", "only positions on this node")
    .option("--status <status>", "active | unbonding | withdrawn")
    .action(
      async (
        options: ClientOptions &
          PagingOptions & { node?: string; status?: "active" | "unbonding" | "withdrawn" },
      ) => {
        const client = await clientFor(options);
        const page = await fetchPages(options, (cursor) =>
          client.stakes({
            limit: options.limit,
            ...(cursor === undefined ? {} : { cursor }),
            ...(options.node === undefined ? {} : { nodeId: options.node }),
            ...(options.status === undefined ? {} : { status: options.status }),
          }),
        );
        if (options.json) return printJson(page);
        printTable(page.items, [
          ["STAKE", (s) => s.id],
          ["NODE", (s) => s.nodeId],
          ["AMOUNT (TDM)", (s) => s.amount],
          ["STATUS", (s) => s.status],
          ["WITHDRAWABLE", (s) => s.withdrawableAt ?? "-"],
        ]);
        if (page.nextCursor !== null)
          process.stdout.write(`\nmore: tandem stake list --cursor ${page.nextCursor}\n`);
      },
    );

  withClientOptions(
    stake
      .command("unstake")
      .description("start a position's cooldown (it stays slashable until it ends)")
      .argument("<stake>", "stake id"),
  )
    .option("--idempotency-key <key>", KEY_HELP)
    .action(async (id: string, options: KeyOptions) => {
      const changed = await (await clientFor(options)).unstake(id, options.idempotencyKey);
      if (options.json) return printJson(changed);
      printStake(changed);
    });

  withClientOptions(
    stake
      .command("withdraw")
      .description("after the cooldown, pay a position back to your wallet")
      .argument("<stake>", "stake id"),
  )
    .option("--idempotency-key <key>", KEY_HELP)
    .action(async (id: string, options: KeyOptions) => {
      const paid = await (await clientFor(options)).withdrawStake(id, options.idempotencyKey);
      if (options.json) return printJson(paid);
      printStake(paid);
    });

  withClientOptions(
    stake
      .command("node")
      .description("a node's stake: totals, its minimum, whether it is eligible for rewards")
      .argument("<node>", "node id"),
    { apiKey: false },
  ).action(async (nodeId: string, options: ClientOptions) => {
    const view = await (await clientFor(options)).nodeStake(nodeId);
    if (options.json) return printJson(view);
    printFields([
      ["node", view.nodeId],
      ["staked", `${view.staked} TDM (active ${view.active}, unbonding ${view.unbonding})`],
      ["minimum", `${view.minimum} TDM`],
      ["eligible", view.eligible ? "yes" : "no"],
      ["commission", `${view.commissionPercent} %`],
      ["stakers", `${view.stakers} (${view.positions} positions)`],
    ]);
  });

  withClientOptions(
    stake
      .command("commission")
      .description("set your node's commission on its rewards")
      .argument("<node>", "node id")
      .argument("<percent>", 'percent, up to 2 decimals, e.g. "10" or "12.5"'),
  ).action(async (nodeId: string, percent: string, options: ClientOptions) => {
    const view = await (await clientFor(options)).setCommission(nodeId, percent);
    if (options.json) return printJson(view);
    process.stdout.write(`commission of ${view.nodeId}: ${view.commissionPercent} %\n`);
  });
}
