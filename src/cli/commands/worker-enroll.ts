import { writeFile } from "node:fs/promises";
import type { Command } from "commander";
import { ENROLLMENT_TTL_SECONDS } from "../../protocol/enrollment.ts";
import { clientFor } from "../context.ts";
import { printFields, printJson, printTable } from "../output.ts";
import {
  fetchPages,
  withClientOptions,
  withPaging,
  type ClientOptions,
  type PagingOptions,
} from "./common.ts";

const UNIT_SECONDS: Readonly<Record<string, number>> = { s: 1, m: 60, h: 3600 };

/** `90`, `90s`, `30m`, `1h`, `24h` → seconds. */
export function parseTtl(value: string): number {
  const match = /^(\d+)([smh]?)$/.exec(value.trim());
  if (match === null)
    throw new Error(
      `--ttl must be a duration like 30m, 1h or 24h (seconds if bare), got "${value}"`,
    );
  const seconds = Number(match[1]) * UNIT_SECONDS[match[2] === "" ? "s" : match[2]!]!;
  if (seconds < ENROLLMENT_TTL_SECONDS.min || seconds > ENROLLMENT_TTL_SECONDS.max)
    throw new Error(`--ttl must be between 1m and 24h, got "${value}"`);
  return seconds;
}

/**
 * `tandem worker enroll-token`: on the supplier's own machine, with its API key, makes a
 * single-use, expiring token for one worker machine, which enrolls with it instead of the key.
 */
export function registerEnrollTokenCommand(worker: Command): void {
  withClientOptions(
    worker
      .command("enroll-token")
      .description(
        "make a single-use token that enrolls one worker machine (instead of your API key)",
      ),
  )
    .option("--ttl <duration>", "how long the token stays valid, e.g. 30m, 1h, 24h (max)", "1h")
    .option("--out <file>", "also write the token to this file (mode 0600), to copy over")
    .action(async (options: ClientOptions & { ttl: string; out?: string }) => {
      const ttlSeconds = parseTtl(options.ttl);
      const client = await clientFor(options);
      const issued = await client.createEnrollmentToken(ttlSeconds);
      if (options.out !== undefined)
        await writeFile(options.out, issued.token + "\n", { mode: 0o600, flag: "wx" });
      if (options.json) return printJson(issued);
      printFields([
        ["token", issued.token],
        ["id", issued.tokenId],
        ["expires", issued.expiresAt],
      ]);
      process.stdout.write(
        "\nShown once, valid for one worker until it expires. On the worker machine:\n" +
          "  TANDEM_ENROLL_TOKEN=<token> tandem worker start --region … --zone …\n" +
          "  (or --enroll-token-file <file>); it then signs in with its own device key.\n",
      );
    });
}

/** `tandem worker enroll-tokens`: the supplier's tokens, newest first, and which device each enrolled. */
export function registerEnrollTokensCommand(worker: Command): void {
  withPaging(
    withClientOptions(
      worker
        .command("enroll-tokens")
        .description("your enrollment tokens, newest first: expiry, use and the device enrolled"),
    ),
    50,
    200,
  ).action(async (options: ClientOptions & PagingOptions) => {
    const client = await clientFor(options);
    const list = await fetchPages(options, (cursor) =>
      client.listEnrollmentTokens({
        limit: options.limit,
        ...(cursor === undefined ? {} : { cursor }),
      }),
    );
    if (options.json) return printJson(list);
    printTable(list.items, [
      ["ID", (t) => t.tokenId],
      ["CREATED", (t) => t.createdAt],
      ["EXPIRES", (t) => t.expiresAt],
      ["USED", (t) => t.usedAt ?? "-"],
      ["DEVICE", (t) => t.deviceId ?? "-"],
    ]);
    if (list.nextCursor !== null)
      process.stdout.write(
        `\nmore: tandem worker enroll-tokens --cursor ${list.nextCursor} (or --all)\n`,
      );
  });
}
