import { chmod, mkdir, readFile, writeFile } from "node:fs/promises";
import { homedir } from "node:os";
import { join } from "node:path";
import { z } from "zod";
import { TandemClient } from "../client/client.ts";
import { nodeHttpTransport } from "../client/node-transport.ts";

export const DEFAULT_URL = "http://127.0.0.1:7400";

/** `$TANDEM_HOME`, default `~/.tandem`: the CLI's saved login, the coordinator's and worker's state. */
export function tandemHome(env: NodeJS.ProcessEnv = process.env): string {
  return env.TANDEM_HOME ?? join(homedir(), ".tandem");
}

const SavedLogin = z.object({ url: z.string(), apiKey: z.string() });
type SavedLogin = z.infer<typeof SavedLogin>;

function loginPath(env: NodeJS.ProcessEnv): string {
  return join(tandemHome(env), "cli.json");
}

export async function readLogin(
  env: NodeJS.ProcessEnv = process.env,
): Promise<SavedLogin | undefined> {
  try {
    return SavedLogin.parse(JSON.parse(await readFile(loginPath(env), "utf8")));
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "ENOENT") return undefined;
    throw new Error(`cannot read ${loginPath(env)}`, { cause: error });
  }
}

/** Saves the key readable by its owner only (0600). */
export async function saveLogin(
  login: SavedLogin,
  env: NodeJS.ProcessEnv = process.env,
): Promise<string> {
  await mkdir(tandemHome(env), { recursive: true, mode: 0o700 });
  const path = loginPath(env);
  await writeFile(path, JSON.stringify(login, null, 2) + "\n", { mode: 0o600 });
  await chmod(path, 0o600);
  return path;
}

export interface ConnectionOptions {
  url?: string;
  apiKey?: string;
}

/** Where to reach the coordinator and as whom: flag, then environment, then the saved login. */
export async function resolveConnection(
  options: ConnectionOptions,
  env: NodeJS.ProcessEnv = process.env,
) {
  const saved = await readLogin(env);
  const url = options.url ?? env.TANDEM_URL ?? saved?.url ?? DEFAULT_URL;
  const apiKey =
    options.apiKey ??
    env.TANDEM_API_KEY ??
    (saved !== undefined && saved.url === url ? saved.apiKey : undefined);
  return { url, apiKey };
}

export async function clientFor(options: ConnectionOptions): Promise<TandemClient> {
  const { url, apiKey } = await resolveConnection(options);
  return cliClient(url, apiKey);
}

/**
 * The client as the CLI uses it: over node:http, which starts faster than `fetch`
 * (node-transport.ts), and parsing without zod's compiled fast path (a command parses a few
 * answers and exits).
 */
export function cliClient(url: string, apiKey: string | undefined): TandemClient {
  return new TandemClient({ baseUrl: url, apiKey, transport: nodeHttpTransport, jitless: true });
}
