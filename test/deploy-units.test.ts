/**
 * The systemd units in deploy/systemd (issue 20) say what they do: each ExecStart runs a real
 * `tandem` command with flags that command has (read from its `--help`), every flag line of the
 * example environment files included; no secret is on a command line; and, where systemd-analyze
 * exists, `systemd-analyze verify` accepts each unit without a warning.
 */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { copyFile, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { fileURLToPath } from "node:url";
import { TANDEM_BIN } from "./support/processes.ts";

const DIR = fileURLToPath(new URL("../deploy/systemd/", import.meta.url));

const UNITS = [
  {
    unit: "tandem-coordinator.service",
    env: "coordinator.env.example",
    command: ["coordinator"],
    user: "tandem",
    home: "/var/lib/tandem",
  },
  {
    unit: "tandem-worker.service",
    env: "worker.env.example",
    command: ["worker", "start"],
    user: "root",
    home: "/var/lib/tandem-worker",
  },
] as const;

/** `Key=Value` lines per section; repeated keys keep every value. */
function parseUnit(text: string): Map<string, string[]> {
  const entries = new Map<string, string[]>();
  let section = "";
  for (const raw of text.split("\n")) {
    const line = raw.trim();
    if (line === "" || line.startsWith("#")) continue;
    const header = /^\[(\w+)\]$/.exec(line);
    if (header !== null) {
      section = header[1]!;
      continue;
    }
    const at = line.indexOf("=");
    assert.ok(at > 0, `not a key=value line: ${line}`);
    const key = `${section}.${line.slice(0, at)}`;
    entries.set(key, [...(entries.get(key) ?? []), line.slice(at + 1)]);
  }
  return entries;
}

/** Every assignment in an environment file, the commented-out alternatives too. */
function envVariants(text: string): Array<[string, string]> {
  return text
    .split("\n")
    .map((line) => /^#?\s*([A-Z_]+)=(.*)$/.exec(line.trim()))
    .filter((m) => m !== null)
    .map((m) => [m[1]!, m[2]!]);
}

/** The long flags `tandem <command…> --help` lists. */
function flagsOf(command: readonly string[]): Set<string> {
  const help = spawnSync(process.execPath, [TANDEM_BIN, ...command, "--help"], {
    encoding: "utf8",
  });
  assert.equal(help.status, 0, help.stderr);
  const flags = [...help.stdout.matchAll(/^ {2}(?:-\w, )?(--[a-z0-9-]+)/gm)].map((m) => m[1]!);
  assert.ok(flags.length > 3, help.stdout);
  return new Set(flags);
}

/** ExecStart with `${VAR}` and `$VAR` taken from `env` (systemd splits `$VAR` into words). */
function argvOf(execStart: string, env: Map<string, string>): string[] {
  const expanded = execStart.replace(
    /\$\{(\w+)\}|\$(\w+)/g,
    (_, braced?: string, bare?: string) => {
      const name = (braced ?? bare)!;
      const value = env.get(name);
      assert.ok(value !== undefined, `${name} is set in the example environment file`);
      return value;
    },
  );
  return expanded.split(/\s+/).filter((word) => word !== "");
}

for (const { unit, env, command, user, home } of UNITS) {
  test(`${unit}: a real tandem command, hardened, no secret in argv`, async () => {
    const entries = parseUnit(await readFile(join(DIR, unit), "utf8"));
    const one = (key: string) => {
      const values = entries.get(key);
      assert.equal(values?.length, 1, `${key} once in ${unit}`);
      return values[0]!;
    };
    assert.equal(one("Service.User"), user);
    assert.equal(one("Service.Restart"), "on-failure");
    assert.equal(one("Service.NoNewPrivileges"), "yes");
    assert.equal(
      one("Service.EnvironmentFile"),
      `/etc/tandem/${unit.replace(/^tandem-|\.service$/g, "")}.env`,
    );
    // Each in its own state directory, so both may run on one machine.
    assert.equal(one("Service.Environment"), `TANDEM_HOME=${home}`);
    assert.equal(`/var/lib/${one("Service.StateDirectory")}`, home);
    assert.equal(one("Install.WantedBy"), "multi-user.target");

    const variants = envVariants(await readFile(join(DIR, env), "utf8"));
    const flags = flagsOf(command);
    const flagVariable = variants.find(([name]) => name.endsWith("_FLAGS"))![0];
    const flagLines = variants.filter(([name]) => name === flagVariable);
    assert.ok(flagLines.length >= 1);
    for (const [, flagLine] of flagLines) {
      const values = new Map(variants.filter(([name]) => name !== flagVariable));
      values.set(flagVariable, flagLine);
      const argv = argvOf(one("Service.ExecStart"), values);
      assert.equal(argv[0], "/usr/local/bin/tandem");
      assert.deepEqual(argv.slice(1, 1 + command.length), command);
      const used = argv.filter((word) => word.startsWith("--"));
      assert.deepEqual(
        used.filter((flag) => !flags.has(flag)),
        [],
        `flags of tandem ${command.join(" ")} in ${flagLine}`,
      );
      for (const secret of ["--enroll-token", "--api-key"]) assert.ok(!used.includes(secret));
      for (const word of argv)
        assert.doesNotMatch(word, /:\/\/[^/@]*:[^/@]*@/, "a password in a URL");
    }
  });
}

test("systemd-analyze verify accepts both units without a warning", async (t) => {
  const analyze = spawnSync("systemd-analyze", ["--version"], { encoding: "utf8" });
  if (analyze.status !== 0) {
    t.skip("systemd-analyze is not installed");
    return;
  }
  const dir = await mkdtemp(join(tmpdir(), "tandem-units-"));
  t.after(() => rm(dir, { recursive: true, force: true }));
  for (const { unit, env } of UNITS) {
    // The same unit, with tandem and its environment file where this checkout has them.
    const text = (await readFile(join(DIR, unit), "utf8"))
      .replaceAll("/usr/local/bin/tandem", TANDEM_BIN)
      .replace(/^EnvironmentFile=.*$/m, `EnvironmentFile=${join(dir, env)}`);
    await writeFile(join(dir, unit), text);
    await copyFile(join(DIR, env), join(dir, env));
  }
  const verify = spawnSync(
    "systemd-analyze",
    ["verify", "--man=no", ...UNITS.map(({ unit }) => join(dir, unit))],
    { encoding: "utf8" },
  );
  assert.equal(verify.status, 0, verify.stderr);
  assert.equal(verify.stdout + verify.stderr, "");
});
