import type { Command } from "commander";
import type { RewardBlockView } from "../../protocol/token.ts";
import { clientFor } from "../context.ts";
import { printFields, printJson, printTable } from "../output.ts";
import {
  fetchPages,
  parseIntOption,
  withClientOptions,
  withPaging,
  type ClientOptions,
  type PagingOptions,
} from "./common.ts";

type BlockOptions = ClientOptions & PagingOptions & { outcome?: "rewarded" | "refused" };

/** `tandem token blocks [hour]`: the hourly reward blocks, or one block with its nodes. */
export function registerBlocksCommand(token: Command): void {
  withPaging(
    withClientOptions(
      token
        .command("blocks")
        .argument("[hour]", "one block's hour: show it with its nodes", parseIntOption("hour"))
        .description(
          "hourly reward blocks, newest first; with an hour, that block's rewarded and refused nodes",
        )
        .option("--outcome <outcome>", "with an hour: only rewarded | refused nodes"),
      { apiKey: false },
    ),
    24,
    500,
  ).action(async (hour: number | undefined, options: BlockOptions) => {
    const client = await clientFor(options);
    if (hour !== undefined) return printBlock(await blockOf(client, hour, options), options);
    const page = await fetchPages(options, (cursor) =>
      client.rewardBlocks({ limit: options.limit, ...(cursor === undefined ? {} : { cursor }) }),
    );
    if (options.json) return printJson(page);
    printTable(page.items, [
      ["HOUR", (b) => String(b.hour)],
      ["STARTS", (b) => b.startsAt],
      ["MINTED (TDM)", (b) => b.minted],
      ["NOMINATED", (b) => String(b.nominated)],
      ["REWARDED", (b) => String(b.rewarded)],
      ["REFUSED", (b) => String(b.refused)],
    ]);
    if (page.nextCursor !== null)
      process.stdout.write(`\nmore: tandem token blocks --cursor ${page.nextCursor}\n`);
  });
}

function blockOf(
  client: Awaited<ReturnType<typeof clientFor>>,
  hour: number,
  options: BlockOptions,
): Promise<RewardBlockView> {
  return client.rewardBlock(hour, {
    limit: Math.min(options.limit, 1000),
    ...(options.cursor === undefined ? {} : { cursor: options.cursor }),
    ...(options.outcome === undefined ? {} : { outcome: options.outcome }),
  });
}

function printBlock(view: RewardBlockView, options: BlockOptions): void {
  if (options.json) return printJson(view);
  const b = view.block;
  printFields([
    ["hour", `${b.hour} (from ${b.startsAt})`],
    ["emission", `${b.emission} TDM`],
    ["minted", `${b.minted} TDM`],
    ["nodes", `${b.nominated} nominated, ${b.rewarded} rewarded, ${b.refused} refused`],
    ["capacity", `${b.capacityTflops} TFLOPS FP32 rewarded`],
    ["made", b.createdAt],
  ]);
  process.stdout.write("\n");
  printTable(view.nodes, [
    ["NODE", (n) => n.nodeId],
    ["OUTCOME", (n) => (n.reason === null ? n.outcome : `refused: ${n.reason}`)],
    ["TFLOPS", (n) => n.capacityTflops],
    ["STAKED (TDM)", (n) => n.staked],
    ["SHARE (TDM)", (n) => n.share],
    ["COMMISSION (TDM)", (n) => n.commission],
  ]);
  if (view.nextCursor !== null)
    process.stdout.write(`\nmore: tandem token blocks ${b.hour} --cursor ${view.nextCursor}\n`);
}

/** `tandem rewards`: what the calling account earned from reward blocks. */
export function registerRewardsCommands(program: Command): void {
  withClientOptions(
    program
      .command("rewards")
      .description(
        "what you earned from reward blocks: commission on your nodes, rewards on your stakes",
      ),
  ).action(async (options: ClientOptions) => {
    const rewards = await (await clientFor(options)).rewards();
    if (options.json) return printJson(rewards);
    printFields([
      ["total", `${rewards.total} TDM`],
      ["commission", `${rewards.commission} TDM (on your nodes)`],
      ["staking", `${rewards.staking} TDM (credited to your positions)`],
    ]);
    process.stdout.write("\n");
    const rows = rewards.nodes.flatMap((n) => [
      { node: n.nodeId, what: "commission", amount: n.commission },
      ...n.positions.map((p) => ({ node: n.nodeId, what: p.stakeId, amount: p.earned })),
    ]);
    printTable(rows, [
      ["NODE", (r) => r.node],
      ["ON", (r) => r.what],
      ["EARNED (TDM)", (r) => r.amount],
    ]);
  });
}
