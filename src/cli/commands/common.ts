import { Option, type Command } from "commander";
import { TandemApiError } from "../../client/client.ts";
import { SizeMiB } from "../../protocol/hardware.ts";
import { isCertificateRefusal } from "../../worker/coordinator-trust.ts";

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

const CA_HINT =
  " (a coordinator with a private CA's certificate: NODE_EXTRA_CA_CERTS=<its CA's PEM file>)";

/** Prints an error the way a user can act on it, and sets a non-zero exit code. */
export function reportError(error: unknown, json: boolean): void {
  process.exitCode = 1;
  if (error instanceof TandemApiError) {
    if (json)
      process.stdout.write(
        JSON.stringify({
          error: { code: error.code, message: error.message, details: error.details },
        }) + "\n",
      );
    else process.stderr.write(`error: ${error.message} (${error.code}, HTTP ${error.status})\n`);
    return;
  }
  const message = error instanceof Error ? error.message : String(error);
  const cause =
    error instanceof Error && error.cause instanceof Error
      ? `: ${error.cause.message}${isCertificateRefusal(error.cause) ? CA_HINT : ""}`
      : "";
  const code =
    error instanceof Error && "code" in error && typeof error.code === "string"
      ? error.code
      : "CLI_ERROR";
  if (json)
    process.stdout.write(JSON.stringify({ error: { code, message: message + cause } }) + "\n");
  else
    process.stderr.write(`error: ${message}${cause}${code === "CLI_ERROR" ? "" : ` (${code})`}\n`);
}
