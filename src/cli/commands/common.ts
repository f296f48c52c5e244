import { Option, type Command } from "commander";
import { TandemApiError } from "../../client/client.ts";
import { SizeMiB } from "../../protocol/hardware.ts";

/** Options every command that talks to a coordinator takes. */
export interface ClientOptions {
  url?: string;
  apiKey?: string;
  json?: boolean;
}

export function withClientOptions(command: Command, { apiKey = true } = {}): Command {
  command.addOption(
    new Option(
      "--url <url>",
      "coordinator URL (default $TANDEM_URL, then the saved login, then http://127.0.0.1:7400)",
    ),
  );
  if (apiKey)
    command.addOption(
      new Option("--api-key <key>", "API key (default $TANDEM_API_KEY, then the saved login)"),
    );
  return command.option("--json", "print machine-readable JSON");
}

export function withJson(command: Command): Command {
  return command.option("--json", "print machine-readable JSON");
}

/** The cluster statuses nothing follows: a cluster in one has ended. */
export const FINAL_STATUSES: ReadonlySet<string> = new Set([
  "completed",
  "failed",
  "terminated",
  "expired",
]);

/** A list command's paging flags: `--limit`, `--cursor`, `--all`. */
export interface PagingOptions {
  limit: number;
  cursor?: string;
  all?: boolean;
}

/** Adds `--limit` (default `fallback`, at most `max`), `--cursor` and `--all`. */
export function withPaging(command: Command, fallback: number, max: number): Command {
  return command
    .option("--limit <n>", `page size (1-${max})`, parseIntOption("--limit"), fallback)
    .option("--cursor <cursor>", "continue from a previous page (its nextCursor)")
    .option("--all", "follow the cursors: every page, printed as one");
}

/**
 * The page `fetch` answers from `--cursor`, or with `--all` every page from there on as one (the
 * last page's fields, all the items, `nextCursor` null).
 */
export async function fetchPages<T, P extends { items: T[]; nextCursor: string | null }>(
  options: PagingOptions,
  fetch: (cursor: string | undefined) => Promise<P>,
): Promise<P> {
  let page = await fetch(options.cursor);
  if (!options.all) return page;
  const items = [...page.items];
  while (page.nextCursor !== null) {
    page = await fetch(page.nextCursor);
    items.push(...page.items);
  }
  return { ...page, items };
}

export function parseIntOption(name: string) {
  return (value: string): number => {
    if (!/^\d+$/.test(value)) throw new Error(`${name} must be a whole number, got "${value}"`);
    return Number(value);
  };
}

/** A size with a unit ("512MiB", "8G", "1.5T"; a bare number is MiB) as whole MiB. */
export function parseSize(name: string) {
  return (value: string): number => {
    const parsed = SizeMiB.safeParse(value);
    if (!parsed.success)
      throw new Error(`${name} must be a size such as 512MiB, 8GiB or 2T, got "${value}"`);
    return parsed.data;
  };
}

/** A positive number of CPU cores, fractions allowed (1.5). */
export function parseCpus(name: string) {
  return (value: string): number => {
    const n = Number(value);
    if (value.trim() === "" || !Number.isFinite(n) || n <= 0)
      throw new Error(`${name} must be a positive number of cores, got "${value}"`);
    return n;
  };
}

export function parseRatio(value: string): number {
  const n = Number(value);
  if (!Number.isFinite(n) || n < 0 || n > 1)
    throw new Error(`expected a ratio between 0 and 1, got "${value}"`);
  return n;
}

export function parseReputation(value: string): number {
  const n = Number(value);
  if (value.trim() === "" || !Number.isFinite(n) || n < 0 || n > 100)
    throw new Error(`expected a reputation score between 0 and 100, got "${value}"`);
  return n;
}

/**
 * What a `tandem` exit status means (README, "Exit codes"): 0 done; 1 an error (a refused request,
 * bad input, no coordinator); 2 nothing fits (a search or deploy that placement cannot satisfy);
 * 3 a deployed cluster that ended without running (failed, terminated or expired).
 */
export const EXIT = { error: 1, noFit: 2, clusterEnded: 3 } as const;

/** The placement funnel as lines: how many nodes each filter left, one filter a line. */
export function funnelLines(funnel: ReadonlyArray<{ filter: string; remaining: number }>): string {
  const width = Math.max("FILTER".length, ...funnel.map((s) => s.filter.length));
  return [
    `  ${"FILTER".padEnd(width)}  NODES LEFT`,
    ...funnel.map((s) => `  ${s.filter.padEnd(width)}  ${s.remaining}`),
  ]
    .map((line) => line + "\n")
    .join("");
}

/** `details.funnel` of a NO_CAPACITY error, when it has a well-formed one. */
function funnelOf(details: unknown): Array<{ filter: string; remaining: number }> | undefined {
  if (typeof details !== "object" || details === null || !("funnel" in details)) return undefined;
  const funnel = details.funnel;
  if (!Array.isArray(funnel)) return undefined;
  const steps = funnel.filter(
    (s): s is { filter: string; remaining: number } =>
      typeof s === "object" &&
      s !== null &&
      typeof (s as { filter?: unknown }).filter === "string" &&
      typeof (s as { remaining?: unknown }).remaining === "number",
  );
  return steps.length === funnel.length && steps.length > 0 ? steps : undefined;
}

const CA_HINT =
  " (a coordinator with a private CA's certificate: NODE_EXTRA_CA_CERTS=<its CA's PEM file>)";

/** Prints an error the way a user can act on it, and sets a non-zero exit code. */
export async function reportError(error: unknown, json: boolean): Promise<void> {
  process.exitCode = EXIT.error;
  if (error instanceof TandemApiError) {
    if (error.code === "NO_CAPACITY") process.exitCode = EXIT.noFit;
    if (json) {
      process.stdout.write(
        JSON.stringify({
          error: { code: error.code, message: error.message, details: error.details },
        }) + "\n",
      );
      return;
    }
    process.stderr.write(`error: ${error.message} (${error.code}, HTTP ${error.status})\n`);
    const funnel = error.code === "NO_CAPACITY" ? funnelOf(error.details) : undefined;
    if (funnel !== undefined) process.stderr.write(funnelLines(funnel));
    return;
  }
  const message = error instanceof Error ? error.message : String(error);
  let cause = "";
  if (error instanceof Error && error.cause instanceof Error) {
    // Loaded only on this path: a client command runs no worker code when all goes well.
    const { isCertificateRefusal } = await import("../../worker/coordinator-trust.ts");
    cause = `: ${error.cause.message}${isCertificateRefusal(error.cause) ? CA_HINT : ""}`;
  }
  const code =
    error instanceof Error && "code" in error && typeof error.code === "string"
      ? error.code
      : "CLI_ERROR";
  if (json)
    process.stdout.write(JSON.stringify({ error: { code, message: message + cause } }) + "\n");
  else
    process.stderr.write(`error: ${message}${cause}${code === "CLI_ERROR" ? "" : ` (${code})`}\n`);
}
