import type { Command } from "commander";
import type { TandemClient } from "../../client/client.ts";
import type { LogLine } from "../../protocol/clusters.ts";
import { clientFor } from "../context.ts";
import { FINAL_STATUSES, parseIntOption, withClientOptions, type ClientOptions } from "./common.ts";

/** What the logs route answers at most per request (`LogsQuery.limit`). */
const MAX_PAGE = 5000;

interface LogsOptions extends ClientOptions {
  follow?: boolean;
  rank?: number;
  limit?: number;
  after?: number;
}

/**
 * `tandem cluster logs`: every line so far (and with `--follow` until the cluster ends), or with
 * `--limit` one page of lines. The route pages by line number (`after`), so a page's cursor is
 * its last line's seq; the "more" hint goes to stderr because stdout is the job's own output.
 */
export function addClusterLogsCommand(cluster: Command): void {
  withClientOptions(
    cluster
      .command("logs")
      .description("a cluster's output, per rank")
      .argument("<id>", "cluster id"),
  )
    .option("--follow", "keep printing until the cluster ends")
    .option("--rank <n>", "only this rank", parseIntOption("--rank"))
    .option(
      "--limit <n>",
      `print at most n lines (1-${MAX_PAGE}), one page`,
      parseIntOption("--limit"),
    )
    .option("--after <seq>", "only lines after this one (a page's last)", parseIntOption("--after"))
    .action(async (id: string, options: LogsOptions) => {
      const client = await clientFor(options);
      const read = (after: number | undefined, limit: number) =>
        client.clusterLogs(id, {
          ...(after === undefined ? {} : { after }),
          ...(options.rank === undefined ? {} : { rank: options.rank }),
          limit,
        });
      if (options.limit === undefined) return follow(read, options);
      if (options.follow) throw new Error("--limit prints one page: give --limit or --follow");
      const page = await read(options.after, options.limit);
      print(page.items, options.json);
      const last = page.items.at(-1)?.seq;
      if (options.json || last === undefined || page.items.length < options.limit) return;
      if ((await read(last, 1)).items.length === 0) return;
      const rank = options.rank === undefined ? "" : ` --rank ${options.rank}`;
      process.stderr.write(
        `\nmore: tandem cluster logs ${id}${rank} --after ${last} --limit ${options.limit}\n`,
      );
    });
}

type ReadLogs = (
  after: number | undefined,
  limit: number,
) => ReturnType<TandemClient["clusterLogs"]>;

/** Every line from `--after` on, page after page; with `--follow`, until the cluster ends. */
async function follow(read: ReadLogs, options: LogsOptions): Promise<void> {
  let after = options.after;
  for (;;) {
    const page = await read(after, MAX_PAGE);
    print(page.items, options.json);
    after = page.items.at(-1)?.seq ?? after;
    if (page.items.length === MAX_PAGE) continue;
    if (!options.follow || FINAL_STATUSES.has(page.clusterStatus)) return;
    await new Promise((resolve) => setTimeout(resolve, 500));
  }
}

function print(lines: LogLine[], json: boolean | undefined): void {
  for (const line of lines) {
    if (json) process.stdout.write(JSON.stringify(line) + "\n");
    else
      (line.stream === "stderr" ? process.stderr : process.stdout).write(
        `[${line.rank}] ${line.text}\n`,
      );
  }
}
