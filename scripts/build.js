// `npm run build`, also run on install by `prepare`: src/ (but its tests) compiled to plain
// JavaScript in dist/, which `tandem` runs while it is current (bin/entry.js). Type errors are
// `npm run check`'s business: the build only strips the types (tsc --noCheck, a few seconds).
// Without TypeScript (an install that left out devDependencies) it builds nothing and `tandem`
// runs src/ through tsx.
import { spawnSync } from "node:child_process";
import { rmSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import { fileURLToPath } from "node:url";
import { BUILD_STAMP, sourceFiles } from "../bin/entry.js";

const root = new URL("../", import.meta.url);
let tsc;
try {
  tsc = createRequire(import.meta.url).resolve("typescript/bin/tsc");
} catch {
  process.stderr.write("build: typescript is not installed; tandem runs src/ through tsx\n");
  process.exit(0);
}
const startedAtMs = Date.now();
const sources = sourceFiles(root).length;
rmSync(new URL("dist/", root), { recursive: true, force: true });
const tscRun = spawnSync(process.execPath, [tsc, "-p", "tsconfig.build.json"], {
  cwd: fileURLToPath(root),
  stdio: "inherit",
});
if (tscRun.status !== 0) process.exit(tscRun.status ?? 1);
writeFileSync(new URL(BUILD_STAMP, root), JSON.stringify({ startedAtMs, sources }) + "\n");
