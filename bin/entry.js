// Which code `bin/tandem.js` runs. `npm run build` (scripts/build.js, run on install by `prepare`)
// compiles src/ into dist/ and writes dist/build.json: when it started, how many source files it
// compiled and the CLI's entry it made. The build is current while no source file (nor the
// dependencies' lock, nor the build's own settings) is newer than that start and no source was
// added or removed since; then that entry runs, else src/ through tsx. Plain JavaScript: it runs
// before tsx is loaded, and only when the build is stale is tsx loaded at all.
import { readFileSync, readdirSync, statSync } from "node:fs";
import { fileURLToPath } from "node:url";

/** The build's record, relative to the repository root. */
export const BUILD_STAMP = "dist/build.json";

/**
 * What else the build is made from (relative to the root; those missing are skipped): the bundle
 * inlines dependencies, so `npm install <package>` (which runs no `prepare`) makes it stale too.
 */
const BUILD_INPUTS = [
  "package.json",
  "package-lock.json",
  "tsconfig.json",
  "tsconfig.build.json",
  "scripts/build.js",
];

/** The TypeScript files the build compiles (src/ but its tests), as absolute paths. */
export function sourceFiles(root) {
  const files = [];
  const walk = (dir) => {
    for (const entry of readdirSync(dir, { withFileTypes: true })) {
      if (entry.isDirectory()) walk(`${dir}${entry.name}/`);
      else if (entry.name.endsWith(".ts") && !entry.name.endsWith(".test.ts"))
        files.push(dir + entry.name);
    }
  };
  walk(fileURLToPath(new URL("src/", root)));
  return files;
}

/**
 * The built CLI's entry under `root` (a file: URL ending in "/") if the build there is current,
 * else undefined. A copy without src/ (a package holding only the build) runs its build.
 */
export function compiledEntry(root) {
  let stamp;
  try {
    stamp = JSON.parse(readFileSync(new URL(BUILD_STAMP, root), "utf8"));
  } catch (error) {
    if (error.code === "ENOENT") return undefined;
    throw error;
  }
  const main = new URL(stamp.entry, root);
  let sources;
  try {
    sources = sourceFiles(root);
  } catch (error) {
    if (error.code === "ENOENT") return main;
    throw error;
  }
  if (sources.length !== stamp.sources) return undefined;
  for (const file of sources) if (statSync(file).mtimeMs > stamp.startedAtMs) return undefined;
  for (const input of BUILD_INPUTS) {
    const mtimeMs = statSync(new URL(input, root), { throwIfNoEntry: false })?.mtimeMs ?? 0;
    if (mtimeMs > stamp.startedAtMs) return undefined;
  }
  return main;
}
