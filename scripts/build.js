// `npm run build`, also run on install by `prepare`: src/ (but its tests) compiled to plain
// JavaScript in dist/, which `tandem` runs while it is current (bin/entry.js). Type errors are
// `npm run check`'s business: the build only strips the types (tsc --noCheck, a few seconds).
//
// Then the CLI's client side is bundled into dist/bundle/ (esbuild, which tsx brings): main.js
// and one chunk per command, zod, commander and the protocol inlined. Node's ES module loader
// pays per file, and `tandem nodes list` loads ~150 of them unbundled: bundled it starts in about
// half the time (bench/cli-start). What runs a coordinator or a worker (`tandem dev`,
// `coordinator`, `worker` and all of src/coordinator and src/worker) stays out of the bundle: the
// bundle imports it from dist/ when such a command runs, and those files find their neighbours
// (web/dist, native/, bin/) as they do in src/.
//
// Without TypeScript (an install that left out devDependencies) it builds nothing and `tandem`
// runs src/ through tsx; without esbuild, dist/cli/main.js is the entry.
import { spawnSync } from "node:child_process";
import { rmSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, relative, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { BUILD_STAMP, sourceFiles } from "../bin/entry.js";

const root = new URL("../", import.meta.url);
const src = fileURLToPath(new URL("src/", root));
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

/**
 * Which of our sources each file of the bundle holds (file name → paths from the root), for the
 * tests that check what a command loads (test/cli-start.test.ts).
 */
const BUNDLE_SOURCES = "dist/bundle/sources.json";

function sourcesOf(metafile) {
  const sources = {};
  for (const [output, { inputs }] of Object.entries(metafile.outputs)) {
    if (!output.endsWith(".js")) continue;
    sources[output.slice(output.lastIndexOf("/") + 1)] = Object.keys(inputs)
      .map((input) => relative(fileURLToPath(root), resolve(input)))
      .filter((path) => path.startsWith("src/"));
  }
  return sources;
}

/** Modules the bundle leaves out (paths relative to src/): what runs a coordinator or a worker. */
const SERVER_SIDE = /^(coordinator|worker)\/|^cli\/commands\/(dev|coordinator|worker)\.ts$/;

let entry = "dist/cli/main.js";
const esbuild = await import("esbuild").catch(() => undefined);
if (esbuild === undefined) process.stderr.write("build: no esbuild; the CLI is not bundled\n");
else {
  const bundled = await esbuild.build({
    entryPoints: [`${src}cli/main.ts`],
    metafile: true,
    bundle: true,
    splitting: true,
    format: "esm",
    platform: "node",
    target: "node20",
    // Flat, so that one relative path from any output file reaches dist/'s own files.
    outdir: fileURLToPath(new URL("dist/bundle/", root)),
    entryNames: "[name]",
    chunkNames: "[name]-[hash]",
    // commander is CommonJS: its require() of node's modules needs a require in each ES chunk.
    banner: {
      js: 'import { createRequire as tandemRequire } from "node:module"; const require = tandemRequire(import.meta.url);',
    },
    // Native addons and database drivers load from node_modules as they are (better-sqlite3 finds
    // its compiled addon relative to its own files: bundled, it cannot).
    external: ["better-sqlite3", "pg", "pg-native"],
    logLevel: "warning",
    plugins: [
      {
        // `z` carries every zod locale (~370 kB, a third of the bundle, parsed at each start); the
        // CLI's messages are English, the default, so only that one is kept.
        name: "zod-english-only",
        setup(build) {
          build.onLoad({ filter: /[\\/]zod[\\/]v4[\\/]locales[\\/]index\.js$/ }, (args) => ({
            contents: 'export { default as en } from "./en.js";',
            resolveDir: dirname(args.path),
          }));
        },
      },
      {
        name: "server-side-from-dist",
        setup(build) {
          build.onResolve({ filter: /^\.\.?\// }, (args) => {
            const path = relative(src, resolve(args.resolveDir, args.path));
            if (!SERVER_SIDE.test(path)) return undefined;
            return { path: `../${path.replace(/\.ts$/, ".js")}`, external: true };
          });
        },
      },
    ],
  });
  entry = "dist/bundle/main.js";
  writeFileSync(new URL(BUNDLE_SOURCES, root), JSON.stringify(sourcesOf(bundled.metafile)) + "\n");
}
writeFileSync(new URL(BUILD_STAMP, root), JSON.stringify({ startedAtMs, sources, entry }) + "\n");
