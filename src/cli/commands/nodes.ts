import type { Command } from "commander";
import type { NodeView, ReputationBreakdown } from "../../protocol/nodes.ts";
import { clientFor } from "../context.ts";
import { mib, percent, printFields, printJson, printTable, type Column } from "../output.ts";
import {
  fetchPages,
  parseIntOption,
  parseRatio,
  parseReputation,
  withClientOptions,
  withPaging,
  type ClientOptions,
  type PagingOptions,
} from "./common.ts";

const NODE_COLUMNS: ReadonlyArray<Column<NodeView>> = [
  ["ID", (n) => n.id],
  ["STATUS", (n) => n.status],
  ["REGION", (n) => n.region],
  ["ZONE", (n) => n.zone],
  ["GPUS", (n) => (n.gpuCount === 0 ? "cpu-only" : `${n.gpuCount}× ${n.gpuModel ?? "unknown"}`)],
  ["VRAM", (n) => (n.vramMiB === 0 ? "-" : mib(n.vramMiB))],
  ["CPU", (n) => `${n.cpu.cores} cores`],
  ["UPTIME 30D", (n) => percent(n.uptime["30d"])],
  ["REP", (n) => n.reputation.toFixed(1)],
  ["FLAGS", (n) => n.flags.join(",") || "-"],
];

interface ListOptions extends ClientOptions, PagingOptions {
  gpu?: string;
  region?: string;
  zone?: string;
  status?: NodeView["status"];
  minUptime?: number;
  minReputation?: number;
  minVramMib?: number;
}

export function registerNodeCommands(program: Command): void {
  const nodes = program.command("nodes").description("see the machines in the network");

  withPaging(
    withClientOptions(nodes.command("list").description("list nodes, with filters")),
    50,
    500,
  )
    .option("--gpu <model>", "GPU model id, e.g. rtx-4090")
    .option("--region <region>", "region, e.g. eu-west")
    .option("--zone <zone>", "zone, e.g. eu-west-a")
    .option("--status <status>", "unverified | available | leased | standby | offline | revoked")
    .option("--min-uptime <ratio>", "minimum 30-day uptime, 0..1", parseRatio)
    .option("--min-reputation <score>", "minimum reputation score, 0..100", parseReputation)
    .option("--min-vram-mib <mib>", "minimum VRAM per GPU, MiB", parseIntOption("--min-vram-mib"))
    .action(async (options: ListOptions) => {
      const client = await clientFor(options);
      const page = await fetchPages(options, (cursor) =>
        client.listNodes({
          gpuModel: options.gpu,
          region: options.region,
          zone: options.zone,
          status: options.status,
          minUptime: options.minUptime,
          minReputation: options.minReputation,
          minVramMiB: options.minVramMib,
          limit: options.limit,
          cursor,
        }),
      );
      if (options.json) return printJson(page);
      if (page.items.length === 0) {
        process.stdout.write("no nodes match\n");
        return;
      }
      printTable(page.items, NODE_COLUMNS);
      if (page.nextCursor !== null)
        process.stdout.write(`\nmore: tandem nodes list --cursor ${page.nextCursor}\n`);
    });

  withClientOptions(
    nodes.command("show").description("one node in full").argument("<id>", "node id"),
  ).action(async (id: string, options: ClientOptions) => {
    const client = await clientFor(options);
    const [node, reputation] = await Promise.all([client.getNode(id), client.nodeReputation(id)]);
    if (options.json) return printJson({ ...node, reputationBreakdown: reputation });
    printFields([
      ["id", node.id],
      ["device", node.deviceId],
      ["status", node.status + (node.verified ? " (verified)" : "")],
      ["location", `${node.region} / ${node.zone}`],
      [
        "gpus",
        node.gpus.length === 0
          ? "none (CPU-only)"
          : node.gpus.map((g) => `#${g.index} ${g.name} ${mib(g.memoryTotalMiB)}`).join("; "),
      ],
      ["cpu", `${node.cpu.model} (${node.cpu.cores} cores, ${node.cpu.arch})`],
      ["memory", mib(node.memoryTotalMiB)],
      ["disk free", mib(node.diskFreeMiB)],
      ["os", node.os],
      ["engines", node.engines === null ? "not reported" : node.engines.join(", ") || "none"],
      [
        "uptime",
        `24h ${percent(node.uptime["24h"])} · 7d ${percent(node.uptime["7d"])} · 30d ${percent(node.uptime["30d"])}`,
      ],
      ["reputation", `${node.reputation.toFixed(1)} / 100`],
      ["flags", node.flags.join(", ") || "none"],
      ["registered", node.registeredAt],
      ["last seen", node.lastSeenAt ?? "never"],
    ]);
    process.stdout.write("\n");
    printReputation(reputation);
  });

  withPaging(
    withClientOptions(
      nodes
        .command("history")
        .description("a node's status and metadata history")
        .argument("<id>", "node id"),
    ),
    100,
    500,
  ).action(async (id: string, options: ClientOptions & PagingOptions) => {
    const client = await clientFor(options);
    const history = await fetchPages(options, (cursor) =>
      client.nodeHistory(id, { limit: options.limit, ...(cursor === undefined ? {} : { cursor }) }),
    );
    if (options.json) return printJson(history);
    printTable(history.items, [
      ["AT", (e) => e.at],
      ["ACTION", (e) => e.action],
      [
        "CHANGE",
        (e) => (e.from === null && e.to === null ? "-" : `${e.from ?? "∅"} → ${e.to ?? "∅"}`),
      ],
      ["ACTOR", (e) => e.actor],
      ["DETAIL", (e) => JSON.stringify(e.detail)],
    ]);
    if (history.nextCursor !== null)
      process.stdout.write(`\nmore: tandem nodes history ${id} --cursor ${history.nextCursor}\n`);
  });
}

/** Each reputation term and the evidence behind it (decayed counts), as src/core/reputation.ts sums it. */
function printReputation(r: ReputationBreakdown): void {
  type Name = keyof typeof r.components;
  const e = r.evidence;
  const n = (x: number) => x.toFixed(2);
  const evidence: Record<Name, string> = {
    uptime: `30-day uptime ${percent(e.uptime30d)}, trusted ${percent(e.uptimeTrust)}`,
    completion: `${n(e.completed)} completed of ${n(e.completed + e.lost + e.lapsed)} leases`,
    failures: `${n(e.lost)} lost + ${n(e.lapsed)} lapsed`,
    verification: `${n(e.verificationsPassed)} passed, ${n(e.verificationsFailed)} failed`,
    slashes: `${n(e.slashes)} slashed leases`,
  };
  printTable(Object.keys(evidence) as Name[], [
    ["COMPONENT", (name) => name],
    ["POINTS", (name) => `${r.components[name].points.toFixed(1)} / ${r.components[name].weight}`],
    ["EVIDENCE", (name) => evidence[name]],
  ]);
  process.stdout.write(
    `\nscore ${r.score.toFixed(1)} at ${r.computedAt}; each event's weight halves every ${r.halfLifeDays} days\n`,
  );
}

export function registerNodePriceCommand(program: Command): void {
  const node = program.command("node").description("your own nodes (supplier)");
  withClientOptions(
    node
      .command("set-price")
      .description("price one of your nodes per hour, in USD (market pricing mode)")
      .argument("<id>", "node id"),
  )
    .requiredOption("--price <amount>", "price of the whole node per hour, e.g. 0.35")
    .action(async (id: string, options: ClientOptions & { price: string }) => {
      const result = await (await clientFor(options)).setNodePrice(id, options.price);
      if (options.json) return printJson(result);
      process.stdout.write(`${id} now costs ${options.price} USD per hour\n`);
    });
}

export function registerNetworkCommands(program: Command): void {
  const network = program.command("network").description("the network as a whole");
  withClientOptions(
    network
      .command("stats")
      .description("nodes and GPUs: verified (proven, not flagged), connected and total"),
  ).action(async (options: ClientOptions) => {
    const stats = await (await clientFor(options)).networkStats();
    if (options.json) return printJson(stats);
    const split = (c: { verified: number; online: number; total: number }) =>
      `verified ${c.verified} of ${c.online} connected (${c.total} registered)`;
    printFields([
      ["nodes", split(stats.nodes)],
      [
        "by status",
        Object.entries(stats.nodes.byStatus)
          .map(([s, n]) => `${s} ${n}`)
          .join(", ") || "-",
      ],
      ["gpus", split(stats.gpus)],
    ]);
    if (stats.gpus.byModel.length > 0) {
      process.stdout.write("\n");
      printTable(stats.gpus.byModel, [
        ["MODEL", (m) => m.model],
        ["VERIFIED", (m) => String(m.verified)],
        ["CONNECTED", (m) => String(m.online)],
        ["TOTAL", (m) => String(m.total)],
      ]);
    }
  });
}
