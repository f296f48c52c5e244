// Builds the explorer into web/dist when it is missing or out of date.
//
//   node --import tsx web/build.ts            build now (npm run build:web)
//   node --import tsx web/build.ts --if-stale  build only when the inputs changed (npm's prestart)
//
// "Out of date" is decided by a SHA-256 over the inputs (web sources, the client and protocol
// modules they import, the lockfile), stored in web/dist/.inputs-sha256: mtimes are unreliable
// after a checkout. The build goes to a temporary directory that then replaces web/dist, so a
// running coordinator never serves half a build. With --if-stale and no vite installed (a
// production install without devDependencies) it warns and exits 0: the coordinator then answers
// `/` with a page saying how to build.
import { createHash } from "node:crypto";
import { readFile, readdir, rename, rm, writeFile } from "node:fs/promises";
import { join, relative } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";

const WEB_DIR = fileURLToPath(new URL(".", import.meta.url));
const REPO_DIR = fileURLToPath(new URL("..", import.meta.url));
export const DIST_DIR = join(WEB_DIR, "dist");
const STAMP_FILE = ".inputs-sha256";
const INPUTS = [
  "web/index.html",
  "web/vite.config.ts",
  "web/src",
  "web/public",
  "src/client",
  "src/protocol",
  "package-lock.json",
];

export type BuildOutcome = { built: true; tookMs: number } | { built: false; reason: string };

/** Builds web/dist unless its stamp matches the inputs' hash (or always, with `force`). */
export async function ensureExplorerBuilt(
  options: { force?: boolean } = {},
): Promise<BuildOutcome> {
  const hash = await inputsHash();
  if (!options.force) {
    const stamp = await readFile(join(DIST_DIR, STAMP_FILE), "utf8").catch(() => "");
    if (stamp.trim() === hash) return { built: false, reason: "up to date" };
  }
  const started = Date.now();
  const { build } = await import("vite");
  const tempDir = join(WEB_DIR, `.dist-${process.pid}-${started}`);
  try {
    await build({
      configFile: join(WEB_DIR, "vite.config.ts"),
      logLevel: "warn",
      build: { outDir: tempDir, emptyOutDir: true },
    });
    await writeFile(join(tempDir, STAMP_FILE), hash + "\n");
    await rm(DIST_DIR, { recursive: true, force: true });
    await rename(tempDir, DIST_DIR);
  } finally {
    await rm(tempDir, { recursive: true, force: true });
  }
  return { built: true, tookMs: Date.now() - started };
}

async function inputsHash(): Promise<string> {
  const hash = createHash("sha256");
  for (const input of INPUTS) {
    for (const file of await filesUnder(join(REPO_DIR, input))) {
      hash.update(relative(REPO_DIR, file)).update("\0");
      hash.update(await readFile(file)).update("\0");
    }
  }
  return hash.digest("hex");
}

/** Every file under `path` (or `path` itself), sorted; test files and missing paths are skipped. */
async function filesUnder(path: string): Promise<string[]> {
  const entries = await readdir(path, { withFileTypes: true, recursive: true }).catch(
    (error: NodeJS.ErrnoException) => {
      if (error.code === "ENOTDIR") return undefined;
      if (error.code === "ENOENT") return [];
      throw error;
    },
  );
  if (entries === undefined) return [path];
  return entries
    .filter((e) => e.isFile() && !e.name.endsWith(".test.ts"))
    .map((e) => join(e.parentPath, e.name))
    .sort();
}

async function main(args: string[]): Promise<number> {
  const ifStale = args.includes("--if-stale");
  try {
    const outcome = await ensureExplorerBuilt({ force: !ifStale });
    process.stdout.write(
      outcome.built
        ? `explorer built into ${relative(process.cwd(), DIST_DIR)} in ${(outcome.tookMs / 1000).toFixed(1)} s\n`
        : `explorer: ${outcome.reason}\n`,
    );
    return 0;
  } catch (error) {
    const missingVite =
      error instanceof Error &&
      "code" in error &&
      error.code === "ERR_MODULE_NOT_FOUND" &&
      error.message.includes("'vite'");
    if (ifStale && missingVite) {
      process.stderr.write(
        "explorer: not built (vite is not installed; run `npm install` with dev dependencies, then `npm run build:web`)\n",
      );
      return 0;
    }
    throw error;
  }
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  process.exitCode = await main(process.argv.slice(2));
}
