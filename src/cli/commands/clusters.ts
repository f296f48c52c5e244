import { randomUUID } from "node:crypto";
import { readFile } from "node:fs/promises";
import type { Command } from "commander";
import type { TandemClient } from "../../client/client.ts";
import { deployWithSecrets, sealPendingSecrets } from "../../client/sealed-deploy.ts";
import type { ClusterView, SearchResponse, TaskBatch } from "../../protocol/clusters.ts";
import type { ClusterCostsView } from "../../protocol/wallet.ts";
import { clientFor } from "../context.ts";
import { printFields, printJson, printTable } from "../output.ts";
import {
  EXIT,
  FINAL_STATUSES,
  fetchPages,
  funnelLines,
  parseCpus,
  parseIntOption,
  parseRatio,
  parseSize,
  parseReputation,
  withClientOptions,
  withPaging,
  type ClientOptions,
  type PagingOptions,
} from "./common.ts";
import { addClusterLogsCommand } from "./cluster-logs.ts";
import { readStdin, taskBatches, taskCommands } from "./task-file.ts";
import { addClusterCostsCommand } from "./wallet.ts";

/** Final states a cluster reaches when it did not do its work: a deploy ending so exits non-zero. */
const ENDED_UNRUN = new Set(["failed", "terminated", "expired"]);

/**
 * Why an ended cluster ended, in words: its final event's reason and, where a rank's exit
 * ended it, that exit (code, signal, error, limit exceeded).
 */
export function endReason(cluster: ClusterView): string {
  const final = cluster.events.findLast((e) => e.type === cluster.status);
  const reason =
    typeof final?.detail.reason === "string" ? final.detail.reason : "no reason recorded";
  const exit = cluster.events.findLast((e) => e.type === "rank-exited" && e.detail.exitCode !== 0);
  if (exit === undefined || cluster.status !== "failed") return reason;
  const d = exit.detail;
  const parts = [
    typeof d.exitCode === "number" ? `exit ${d.exitCode}` : undefined,
    typeof d.signal === "string" ? `signal ${d.signal}` : undefined,
    typeof d.error === "string" ? d.error : undefined,
    typeof d.limitExceeded === "string" ? `${d.limitExceeded} limit exceeded` : undefined,
  ].filter((p) => p !== undefined);
  return parts.length === 0 ? reason : `${reason} (rank ${String(d.rank)}: ${parts.join(", ")})`;
}

/** The lines that say how an ended cluster ended and what came back to its owner. */
function endFields(cluster: ClusterView, costs: ClusterCostsView): Array<[string, string]> {
  return [
    ["reason", endReason(cluster)],
    [
      "refunded",
      `${costs.refunded} ${costs.currency} of ${costs.charged} ${costs.currency} charged`,
    ],
  ];
}

interface FilterOptions extends ClientOptions {
  gpu?: string;
  gpusPerNode?: number;
  nodes: number;
  minVramMib?: number;
  region?: string[];
  spreadZones?: boolean;
  minUptime?: number;
  minReputation?: number;
  maxPrice?: string;
  minStake?: string;
  tee?: boolean;
  /** false with `--no-internet`. */
  internet?: boolean;
  shadow?: number;
  memory?: number;
  cpus?: number;
  pids?: number;
  disk?: number;
  minNodes?: number;
  maxNodes?: number;
  tasksPerNode?: number;
  currency: "TDM" | "USDC" | "USD";
}

function withFilters(command: Command): Command {
  return withClientOptions(command)
    .option("--gpu <model>", "GPU model id (e.g. rtx-4090), or cpu for CPU-only nodes")
    .option("--gpus-per-node <n>", "GPUs each node must have", parseIntOption("--gpus-per-node"))
    .option("--nodes <n>", "how many nodes", parseIntOption("--nodes"), 1)
    .option("--min-vram-mib <mib>", "minimum VRAM per GPU, MiB", parseIntOption("--min-vram-mib"))
    .option("--region <region...>", "allowed regions")
    .option("--spread-zones", "place nodes in different zones")
    .option("--min-uptime <ratio>", "minimum 30-day uptime, 0..1", parseRatio)
    .option("--min-reputation <score>", "minimum reputation score, 0..100", parseReputation)
    .option("--max-price <amount>", "highest price per node-hour, e.g. 0.50")
    .option("--min-stake <tdm>", "only nodes with at least this much TDM actively staked on them")
    .option("--tee", "only TEE-capable GPUs")
    .option("--no-internet", "no outbound internet for the ranks: only their cluster's network")
    .option(
      "--shadow <k>",
      "standby nodes that take a failed node's rank at once",
      parseIntOption("--shadow"),
    )
    .option("--memory <size>", "memory each rank needs, e.g. 8GiB", parseSize("--memory"))
    .option("--cpus <cores>", "CPU cores each rank needs, e.g. 2 or 0.5", parseCpus("--cpus"))
    .option("--pids <n>", "processes and threads each rank needs at once", parseIntOption("--pids"))
    .option("--disk <size>", "disk each rank needs in /job, e.g. 20GiB", parseSize("--disk"))
    .option("--currency <currency>", "TDM | USDC | USD", "USDC");
}

/** The per-rank limits asked (`--memory`, `--cpus`, `--pids`, `--disk`); none: the nodes' offers. */
function limitsFrom(o: FilterOptions) {
  const limits = {
    ...(o.memory === undefined ? {} : { memoryMiB: o.memory }),
    ...(o.cpus === undefined ? {} : { cpuCores: o.cpus }),
    ...(o.pids === undefined ? {} : { pids: o.pids }),
    ...(o.disk === undefined ? {} : { diskMiB: o.disk }),
  };
  return Object.keys(limits).length === 0 ? {} : { limits };
}

function filtersFrom(o: FilterOptions) {
  return {
    nodes: o.nodes,
    currency: o.currency,
    ...(o.gpu === undefined ? {} : { gpuModel: o.gpu }),
    ...(o.gpusPerNode === undefined ? {} : { gpusPerNode: o.gpusPerNode }),
    ...(o.minVramMib === undefined ? {} : { minVramMiB: o.minVramMib }),
    ...(o.region === undefined ? {} : { regions: o.region }),
    ...(o.spreadZones ? { spreadZones: true } : {}),
    ...(o.minUptime === undefined ? {} : { minUptime: o.minUptime }),
    ...(o.minReputation === undefined ? {} : { minReputation: o.minReputation }),
    ...(o.maxPrice === undefined ? {} : { maxPricePerHour: o.maxPrice }),
    ...(o.minStake === undefined ? {} : { minStake: o.minStake }),
    ...(o.tee ? { teeCapable: true } : {}),
    ...(o.internet === false ? { internet: false } : {}),
    ...(o.shadow === undefined ? {} : { shadow: o.shadow }),
    ...limitsFrom(o),
  };
}

/** `--max-nodes` turns on autoscaling (batch): between `--min-nodes` (default `--nodes`) and it. */
function autoscaleFrom(o: FilterOptions) {
  if (o.maxNodes === undefined) return {};
  return {
    autoscale: {
      min: o.minNodes ?? o.nodes,
      max: o.maxNodes,
      ...(o.tasksPerNode === undefined ? {} : { tasksPerNode: o.tasksPerNode }),
    },
  };
}

/** The autoscaling flags of `cluster deploy` and `cluster quote`. */
function withAutoscale(command: Command): Command {
  return command
    .option(
      "--max-nodes <n>",
      "autoscale (batch): grow up to this many nodes with the task queue",
      parseIntOption("--max-nodes"),
    )
    .option(
      "--min-nodes <n>",
      "autoscale: never fewer nodes (default: --nodes)",
      parseIntOption("--min-nodes"),
    )
    .option(
      "--tasks-per-node <n>",
      "autoscale: queued or running tasks per node to aim at (default 1)",
      parseIntOption("--tasks-per-node"),
    );
}

/** `NAME=value` pairs of a repeatable flag. */
function namedValues(pairs: readonly string[] | undefined, flag: string): Array<[string, string]> {
  return (pairs ?? []).map((pair) => {
    const at = pair.indexOf("=");
    if (at <= 0) throw new Error(`${flag} expects NAME=value, got "${pair}"`);
    return [pair.slice(0, at), pair.slice(at + 1)];
  });
}

/** `--secret NAME=value` and `--secret-file NAME=path`; undefined when neither is given. */
async function secretsFrom(
  values: readonly string[] | undefined,
  files: readonly string[] | undefined,
): Promise<Record<string, string> | undefined> {
  const pairs = [
    ...namedValues(values, "--secret"),
    ...(await Promise.all(
      namedValues(files, "--secret-file").map(async ([name, path]): Promise<[string, string]> => [
        name,
        await readFile(path, "utf8"),
      ]),
    )),
  ];
  if (pairs.length === 0) return undefined;
  const twice = pairs.map(([name]) => name).filter((name, i, all) => all.indexOf(name) !== i);
  if (twice.length > 0) throw new Error(`secret ${twice[0]} is given twice`);
  return Object.fromEntries(pairs);
}

const KIND_FILTER_HELP =
  "only nodes whose worker runs this kind's engine, as its deploy would: batch | torch | dask | ray | container";

function kindFrom(options: { kind?: ClusterView["kind"] }): { kind?: ClusterView["kind"] } {
  return options.kind === undefined ? {} : { kind: options.kind };
}

function printSearch(result: SearchResponse): void {
  if (!result.satisfiable) {
    process.stdout.write(`cannot place ${result.needed} node(s): ${result.explanation}\n`);
    process.stdout.write(funnelLines(result.funnel));
    return;
  }
  printTable(result.offers, [
    ["NODE", (o) => o.nodeId],
    ["REGION", (o) => o.region],
    ["ZONE", (o) => o.zone],
    ["GPUS", (o) => (o.gpuCount === 0 ? "cpu-only" : `${o.gpuCount}× ${o.gpuModel ?? "?"}`)],
    [`PRICE/H (${result.currency})`, (o) => o.pricePerHour],
  ]);
  process.stdout.write(`\n${result.explanation}\n`);
}

function printCluster(cluster: ClusterView, ended: Array<[string, string]> = []): void {
  printFields([
    ["cluster", cluster.id],
    ["kind", cluster.kind],
    ["status", cluster.status],
    ["hours", String(cluster.hours)],
    ["command", cluster.command.join(" ")],
    ["limits asked", describeLimits(cluster.limits) || "none (each rank gets its node's offer)"],
    ["started", cluster.startedAt ?? "-"],
    ["ends", cluster.endsAt ?? "-"],
    ...ended,
  ]);
  process.stdout.write("\n");
  printTable(cluster.nodes, [
    ["RANK", (n) => (n.rank === null ? "-" : String(n.rank))],
    ["ROLE", (n) => n.role],
    ["NODE", (n) => n.nodeId],
    ["ZONE", (n) => n.zone],
    ["STATUS", (n) => n.status],
    ["EXIT", (n) => (n.exitCode === null ? "-" : String(n.exitCode))],
    [`PRICE/H`, (n) => `${n.pricePerHour} ${cluster.currency}`],
    ["LIMITS", (n) => (n.limits === null ? "-" : describeLimits(n.limits))],
  ]);
}

/** "mem 8192 MiB, cpus 2, pids 4096, disk 20480 MiB" (only the limits given). */
function describeLimits(limits: ClusterView["limits"]): string {
  const parts: string[] = [];
  if (limits.memoryMiB !== undefined) parts.push(`mem ${limits.memoryMiB} MiB`);
  if (limits.cpuCores !== undefined) parts.push(`cpus ${limits.cpuCores}`);
  if (limits.pids !== undefined) parts.push(`pids ${limits.pids}`);
  if (limits.diskMiB !== undefined) parts.push(`disk ${limits.diskMiB} MiB`);
  return parts.join(", ");
}

/** Shows each node's progress (reserved → running) until the cluster runs or ends. */
async function followProvisioning(
  client: TandemClient,
  cluster: ClusterView,
): Promise<ClusterView> {
  const seen = new Map<string, string>();
  let current = cluster;
  for (;;) {
    for (const node of current.nodes) {
      if (seen.get(node.nodeId) === node.status) continue;
      seen.set(node.nodeId, node.status);
      const what = node.rank === null ? "standby" : `rank ${node.rank}`;
      process.stdout.write(
        `  ${what} (${node.role}, ${node.zone}) ${node.nodeId}: ${node.status}\n`,
      );
    }
    if (current.status !== "provisioning" && current.status !== "pending") return current;
    await new Promise((resolve) => setTimeout(resolve, 150));
    current = await client.getCluster(cluster.id);
  }
}

export function registerClusterCommands(program: Command): void {
  withFilters(
    program
      .command("search")
      .description(
        "find capacity for a cluster; says which filter eliminated what when nothing fits",
      ),
  )
    .option("--kind <kind>", KIND_FILTER_HELP)
    .action(async (options: FilterOptions & { kind?: ClusterView["kind"] }) => {
      const result = await (
        await clientFor(options)
      ).search({ ...filtersFrom(options), ...kindFrom(options) });
      if (!result.satisfiable) process.exitCode = EXIT.noFit;
      if (options.json) return printJson(result);
      printSearch(result);
    });

  const cluster = program
    .command("cluster")
    .description("rent nodes and run distributed jobs on them");
  withAutoscale(
    withFilters(
      cluster
        .command("deploy")
        .description("deploy a cluster and run a command on it")
        .argument("<command...>", "the command, after --"),
    ),
  )
    .requiredOption("--kind <kind>", "batch | torch | dask | ray | container")
    .requiredOption("--hours <n>", "paid hours", parseIntOption("--hours"))
    .option("--image <image>", "OCI image for --kind container")
    .option(
      "--env <NAME=value...>",
      "environment for the job, stored and shown as is: not for secrets (use --secret)",
    )
    .option(
      "--secret <NAME=value...>",
      "a secret for the job's environment, sealed here to each chosen node's key: the coordinator never sees it",
    )
    .option(
      "--secret-file <NAME=path...>",
      "like --secret, the value read from a file (exact bytes; keeps it out of ps and shell history)",
    )
    .option("--idempotency-key <key>", "retry-safe key (default: a fresh one)")
    .action(
      async (
        command: string[],
        options: FilterOptions & {
          kind: ClusterView["kind"];
          hours: number;
          image?: string;
          env?: string[];
          secret?: string[];
          secretFile?: string[];
          idempotencyKey?: string;
        },
      ) => {
        const client = await clientFor(options);
        const env = Object.fromEntries(namedValues(options.env, "--env"));
        const secrets = await secretsFrom(options.secret, options.secretFile);
        const request = {
          ...filtersFrom(options),
          ...autoscaleFrom(options),
          kind: options.kind,
          hours: options.hours,
          command,
          ...(options.env === undefined ? {} : { env }),
          ...(options.image === undefined ? {} : { image: options.image }),
        };
        const key = options.idempotencyKey ?? randomUUID();
        const deployed =
          secrets === undefined
            ? await client.deployCluster(request, key)
            : await deployWithSecrets(client, request, secrets, key);
        if (options.json) return printJson(deployed);
        process.stdout.write(`cluster ${deployed.id}: ${deployed.nodes.length} node(s) reserved\n`);
        const settled = await followProvisioning(client, deployed);
        process.stdout.write(`cluster ${settled.id} is ${settled.status}\n`);
        if (ENDED_UNRUN.has(settled.status)) {
          process.exitCode = EXIT.clusterEnded;
          const costs = await client.clusterCosts(settled.id);
          printFields(endFields(settled, costs));
          process.stdout.write(`its logs: tandem cluster logs ${settled.id}\n`);
          return;
        }
        process.stdout.write(`follow its logs: tandem cluster logs ${settled.id} --follow\n`);
      },
    );

  withAutoscale(
    withFilters(
      cluster
        .command("quote")
        .description("what a deploy would cost now: rental, every fee, totals"),
    ),
  )
    .requiredOption("--hours <n>", "paid hours", parseIntOption("--hours"))
    .option("--kind <kind>", KIND_FILTER_HELP)
    .action(async (options: FilterOptions & { hours: number; kind?: ClusterView["kind"] }) => {
      const quote = await (
        await clientFor(options)
      ).quote({
        ...filtersFrom(options),
        ...autoscaleFrom(options),
        ...kindFrom(options),
        hours: options.hours,
      });
      if (options.json) return printJson(quote);
      const c = quote.currency;
      printFields([
        [
          "rental",
          `${quote.rental} ${c} (${quote.lines.length} node(s) × ${quote.durationMinutes / 60} h)`,
        ],
        ["reservation fee", `${quote.fees.reservationConsumer} ${c}`],
        ["payment fee", `${quote.fees.payment} ${c}`],
        ["you pay", `${quote.consumerTotal} ${c}`],
        ["suppliers receive", `${quote.supplierPayout} ${c}`],
        ["burned", `${quote.fees.burn} ${c}`],
        ["treasury", `${quote.treasury} ${c}`],
      ]);
    });

  addClusterCostsCommand(cluster);

  withPaging(
    withClientOptions(cluster.command("list").description("your clusters, newest first")),
    50,
    200,
  ).action(async (options: ClientOptions & PagingOptions) => {
    const client = await clientFor(options);
    const list = await fetchPages(options, (cursor) =>
      client.listClusters({ limit: options.limit, ...(cursor === undefined ? {} : { cursor }) }),
    );
    if (options.json) return printJson(list);
    printTable(list.items, [
      ["ID", (c) => c.id],
      ["KIND", (c) => c.kind],
      ["STATUS", (c) => c.status],
      ["NODES", (c) => String(c.nodes.length)],
      ["CREATED", (c) => c.createdAt],
    ]);
    if (list.nextCursor !== null)
      process.stdout.write(`\nmore: tandem cluster list --cursor ${list.nextCursor} (or --all)\n`);
  });

  withClientOptions(
    cluster
      .command("show")
      .description("a cluster: nodes, ranks, events")
      .argument("<id>", "cluster id"),
  ).action(async (id: string, options: ClientOptions) => {
    const client = await clientFor(options);
    const view = await client.getCluster(id);
    if (options.json) return printJson(view);
    printCluster(
      view,
      FINAL_STATUSES.has(view.status) ? endFields(view, await client.clusterCosts(id)) : [],
    );
    process.stdout.write("\n");
    printTable(view.events, [
      ["AT", (e) => e.at],
      ["EVENT", (e) => e.type],
      // Who is at fault for a rank's end (consumer, supplier or network), where one ended.
      ["CAUSE", (e) => (typeof e.detail.cause === "string" ? e.detail.cause : "")],
      ["DETAIL", (e) => JSON.stringify(e.detail)],
    ]);
  });

  withClientOptions(
    cluster
      .command("secrets")
      .description(
        "a cluster's sealed secrets: names, status, the nodes they are sealed to; with --secret, seal them to a cluster waiting for them",
      )
      .argument("<id>", "cluster id"),
  )
    .option("--secret <NAME=value...>", "a value to seal here to every node of the cluster")
    .option("--secret-file <NAME=path...>", "like --secret, the value read from a file")
    .action(
      async (id: string, options: ClientOptions & { secret?: string[]; secretFile?: string[] }) => {
        const client = await clientFor(options);
        const secrets = await secretsFrom(options.secret, options.secretFile);
        const view =
          secrets === undefined
            ? await client.clusterSecrets(id)
            : await sealPendingSecrets(client, id, secrets);
        if (options.json) return printJson(view);
        printFields([
          ["cluster", view.clusterId],
          ["secrets", view.names.join(", ")],
          ["status", view.status],
          ["seal by", view.sealBy ?? "-"],
        ]);
        process.stdout.write("\n");
        printTable(view.recipients, [
          ["NODE", (r) => r.nodeId],
          ["ROLE", (r) => r.role],
          ["DEVICE KEY", (r) => r.publicKey],
        ]);
      },
    );

  addClusterLogsCommand(cluster);

  withClientOptions(
    cluster
      .command("terminate")
      .description("end a cluster now; unserved time is refunded")
      .argument("<id>", "cluster id"),
  ).action(async (id: string, options: ClientOptions) => {
    const view = await (await clientFor(options)).terminateCluster(id);
    if (options.json) return printJson(view);
    process.stdout.write(`cluster ${view.id} is ${view.status}\n`);
  });

  withClientOptions(
    cluster
      .command("extend")
      .description("buy more hours for a cluster")
      .argument("<id>", "cluster id"),
  )
    .requiredOption("--hours <n>", "hours to add", parseIntOption("--hours"))
    .option("--idempotency-key <key>", "retry-safe key (default: a fresh one)")
    .action(
      async (id: string, options: ClientOptions & { hours: number; idempotencyKey?: string }) => {
        const view = await (
          await clientFor(options)
        ).extendCluster(id, options.hours, options.idempotencyKey ?? randomUUID());
        if (options.json) return printJson(view);
        process.stdout.write(
          `cluster ${view.id}: ${view.hours} hours, ends ${view.endsAt ?? "after it starts"}\n`,
        );
      },
    );

  withClientOptions(
    cluster
      .command("submit")
      .description(
        "queue tasks on an autoscaled cluster (it grows while tasks wait): one command after --, " +
          "or --file with one command a line",
      )
      .argument("<id>", "cluster id")
      .argument("[command...]", "the task's command (after --)"),
  )
    .option(
      "--file <path>",
      "tasks, one a line, each run as `sh -c LINE` (blank and # lines skipped); - reads stdin",
    )
    .action(async (id: string, command: string[], options: ClientOptions & { file?: string }) => {
      if (options.file === undefined) {
        if (command.length === 0) throw new Error("give a command after -- or --file <path>");
        const task = await (await clientFor(options)).submitTask(id, command);
        if (options.json) return printJson(task);
        process.stdout.write(`task ${task.seq} on ${id}: ${task.status}\n`);
        return;
      }
      if (command.length > 0) throw new Error("give either a command or --file, not both");
      const text = options.file === "-" ? await readStdin() : await readFile(options.file, "utf8");
      const commands = taskCommands(text);
      if (commands.length === 0) throw new Error(`no tasks in ${options.file}`);
      const client = await clientFor(options);
      const batches: TaskBatch[] = [];
      // Each request queues its slice whole or not at all; a refused slice stops the rest.
      for (const slice of taskBatches(commands)) batches.push(await client.submitTasks(id, slice));
      const queued = { count: commands.length, firstSeq: batches[0]!.firstSeq, batches };
      if (options.json) return printJson(queued);
      const seqs = batches.map((b) => `${b.firstSeq}-${b.lastSeq}`).join(", ");
      process.stdout.write(`${queued.count} tasks queued on ${id} (tasks ${seqs})\n`);
    });

  withPaging(
    withClientOptions(
      cluster
        .command("tasks")
        .description("an autoscaled cluster's task queue, in queue order")
        .argument("<id>", "cluster id"),
    ),
    50,
    200,
  ).action(async (id: string, options: ClientOptions & PagingOptions) => {
    const client = await clientFor(options);
    const tasks = await fetchPages(options, (cursor) =>
      client.clusterTasks(id, {
        limit: options.limit,
        ...(cursor === undefined ? {} : { cursor }),
      }),
    );
    if (options.json) return printJson(tasks);
    printTable(tasks.items, [
      ["TASK", (t) => String(t.seq)],
      ["STATUS", (t) => t.status],
      ["NODE", (t) => t.nodeId ?? "-"],
      ["EXIT", (t) => (t.exitCode === null ? "-" : String(t.exitCode))],
      ["COMMAND", (t) => t.command.join(" ")],
    ]);
    if (tasks.nextCursor !== null)
      process.stdout.write(
        `\nmore: tandem cluster tasks ${id} --cursor ${tasks.nextCursor} (or --all)\n`,
      );
  });
}
