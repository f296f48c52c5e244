// A fast-starting CLI (issue 20): `tandem` loads only what a command needs. The real CLI as a
// child process, with a loader hook (support/module-log.js) that logs every module it loads: a
// client command loads no coordinator or worker code, `--version` no command at all. Run from the
// source (through tsx) and, where `npm run build` left a current build (CI: `npm ci` builds it),
// from dist/ as an installed `tandem` runs.
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { mkdir, mkdtemp, readFile, rm, utimes, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { pathToFileURL } from "node:url";
import { promisify } from "node:util";
import { after, before, describe, it } from "node:test";
import { BUILD_STAMP, compiledEntry } from "../bin/entry.js";
import { startTestCoordinator, type TestCoordinator } from "./support/coordinator.ts";
import { TANDEM_BIN } from "./support/processes.ts";

const execFileAsync = promisify(execFile);
const ROOT = new URL("../", import.meta.url);
const MODULE_LOG = new URL("./support/module-log.js", import.meta.url).href;

let home: string;
let tc: TestCoordinator;
let apiKey: string;
before(async () => {
  home = await mkdtemp(join(tmpdir(), "tandem-cli-start-"));
  tc = await startTestCoordinator({ database: "sqlite" });
  ({ apiKey } = await tc.signUp(["consumer"]));
});
after(async () => {
  await tc.close();
  await rm(home, { recursive: true, force: true });
});

/**
 * Which of our sources each bundled file holds (`npm run build` writes it): a bundled chunk stands
 * for the sources in it, so both modes are checked by source.
 */
const bundleSources: Record<string, string[]> = await readFile(
  new URL("dist/bundle/sources.json", ROOT),
  "utf8",
).then(
  (text) => JSON.parse(text) as Record<string, string[]>,
  () => ({}),
);
const sourcesIn = (modules: string[]) =>
  modules.flatMap((m) =>
    m.startsWith("dist/bundle/") ? (bundleSources[m.slice("dist/bundle/".length)] ?? []) : [m],
  );

/**
 * `tandem args…`: its output, the repository's modules it loaded (paths from the root) and Node's
 * internal modules it loaded (`NativeModule http`, …).
 */
async function tandem(args: string[], env: Record<string, string>) {
  const log = join(home, `modules-${Math.random().toString(36).slice(2)}.log`);
  const { stdout } = await execFileAsync(
    process.execPath,
    ["--import", MODULE_LOG, TANDEM_BIN, ...args],
    {
      env: {
        PATH: process.env.PATH ?? "/usr/bin:/bin",
        TANDEM_HOME: home,
        TANDEM_URL: tc.url,
        TANDEM_API_KEY: apiKey,
        TANDEM_MODULE_LOG: log,
        ...env,
      },
    },
  );
  const lines = (await readFile(log, "utf8")).split("\n");
  const builtins = lines.filter((l) => l.startsWith("builtin:")).map((l) => l.slice(8));
  const modules = lines
    .filter((url) => url.startsWith(ROOT.href))
    .map((url) => url.slice(ROOT.href.length))
    // Dependencies are not ours (in a checkout node_modules/ lies under the root too).
    .filter((path) => !path.startsWith("node_modules/"));
  return { stdout, modules, builtins };
}

const serverSide = (modules: string[]) =>
  modules.filter((m) => /^(src|dist)\/(coordinator|worker)\//.test(m));

/** The command modules (src/cli/commands/) among `modules`, by name. */
const commandsIn = (modules: string[]) =>
  sourcesIn(modules)
    .map((m) => /^(?:src|dist)\/cli\/commands\/([a-z-]+)\.[jt]s$/.exec(m)?.[1])
    .filter((name) => name !== undefined);

const compiled = compiledEntry(ROOT);
const modes = [
  {
    name: "from source",
    env: { TANDEM_FROM_SOURCE: "1" },
    dir: "src",
    main: "src/cli/main.ts",
    skip: false,
  },
  {
    name: "compiled",
    env: {},
    dir: "dist",
    main: compiled?.href.slice(ROOT.href.length),
    skip: compiled === undefined && "no current build here (npm run build)",
  },
];

for (const mode of modes) {
  describe(`tandem ${mode.name}`, { skip: mode.skip }, () => {
    it("--version loads no command", async () => {
      const { stdout, modules } = await tandem(["--version"], mode.env);
      assert.match(stdout, /^\d+\.\d+\.\d+\n$/);
      assert.ok(mode.main !== undefined && modules.includes(mode.main), modules.join(", "));
      assert.deepEqual(commandsIn(modules), []);
    });

    it("client commands and the whole tree's help load no coordinator or worker code", async () => {
      for (const [args, command] of [
        [["nodes", "list"], "nodes"],
        [["cluster", "list"], "clusters"],
        [["wallet", "balance"], "wallet"],
        [["--help"], "dev"],
      ] as const) {
        const { modules } = await tandem([...args], mode.env);
        assert.ok(
          commandsIn(modules).includes(command),
          `${args.join(" ")}: ${modules.join(", ")}`,
        );
        assert.ok(
          modules.every((m) => m.startsWith(`${mode.dir}/`) || m.startsWith("bin/")),
          `${args.join(" ")} runs ${mode.dir}/ only: ${modules.join(", ")}`,
        );
        assert.deepEqual(serverSide(modules), [], args.join(" "));
      }
    });

    it("`nodes list` builds only its own answers' schemas and reaches the coordinator without fetch", async () => {
      const { stdout, modules, builtins } = await tandem(["nodes", "list"], mode.env);
      assert.equal(stdout, "no nodes match\n", "the answer parsed (the coordinator has no nodes)");
      const sources = sourcesIn(modules);
      assert.ok(sources.includes("src/protocol/nodes.ts"), sources.join(", "));
      for (const other of ["clusters", "wallet", "devices", "stakes", "network", "accounts"])
        assert.ok(!sources.includes(`src/protocol/${other}.ts`), `${other}: ${sources.join(", ")}`);
      assert.ok(builtins.includes("NativeModule http"), "node:http carries the request");
      assert.deepEqual(
        builtins.filter((b) => b.includes("undici")),
        [],
        "undici (fetch) is never loaded",
      );
    });
  });
}

describe("the compiled tandem", { skip: modes[1]!.skip }, () => {
  it("has the source's commands, options and help, also where the bundle imports dist/", async () => {
    for (const args of [
      ["--help"],
      ["worker", "start", "--help"],
      ["cluster", "deploy", "--help"],
    ]) {
      const built = await tandem(args, {});
      const source = await tandem(args, { TANDEM_FROM_SOURCE: "1" });
      assert.equal(built.stdout, source.stdout, args.join(" "));
    }
  });
});

describe("bin/tandem.js runs the build only while it is current (bin/entry.js)", () => {
  it("runs the build until a source or the lock is edited, or a source added or removed", async () => {
    const root = await mkdtemp(join(tmpdir(), "tandem-entry-"));
    after(() => rm(root, { recursive: true, force: true }));
    const at = (path: string) => join(root, path);
    const rootUrl = pathToFileURL(root + "/");
    const main = new URL("dist/bundle/main.js", rootUrl);
    const builtAtMs = Date.UTC(2026, 11, 7, 12);
    const dated = async (path: string, ms: number) => {
      await mkdir(dirname(at(path)), { recursive: true });
      await writeFile(at(path), "");
      await utimes(at(path), ms / 1000, ms / 1000);
    };
    await dated("src/cli/main.ts", builtAtMs - 60_000);
    await dated("src/core/money.ts", builtAtMs - 60_000);
    await dated("src/core/money.test.ts", builtAtMs - 60_000);
    await dated("dist/bundle/main.js", builtAtMs);
    assert.equal(compiledEntry(rootUrl), undefined, "never built");

    await writeFile(
      at(BUILD_STAMP),
      JSON.stringify({ startedAtMs: builtAtMs, sources: 2, entry: "dist/bundle/main.js" }),
    );
    assert.deepEqual(compiledEntry(rootUrl), main, "current");
    await dated("src/core/money.test.ts", builtAtMs + 1000);
    assert.deepEqual(compiledEntry(rootUrl), main, "a test is not built");

    await dated("src/core/money.ts", builtAtMs + 1000);
    assert.equal(compiledEntry(rootUrl), undefined, "a source edited since the build");
    await dated("src/core/money.ts", builtAtMs - 60_000);
    await dated("src/core/clock.ts", builtAtMs - 60_000);
    assert.equal(compiledEntry(rootUrl), undefined, "a source added (an older file moved in)");
    await rm(at("src/core/clock.ts"));
    await rm(at("src/core/money.ts"));
    assert.equal(compiledEntry(rootUrl), undefined, "a source removed");

    await dated("src/core/money.ts", builtAtMs - 60_000);
    assert.deepEqual(compiledEntry(rootUrl), main, "as built again");
    await dated("package-lock.json", builtAtMs + 1000);
    assert.equal(compiledEntry(rootUrl), undefined, "dependencies installed since (inlined)");
    await dated("package-lock.json", builtAtMs - 60_000);

    await rm(at("src"), { recursive: true });
    assert.deepEqual(compiledEntry(rootUrl), main, "a copy without sources runs its build");
  });
});
