import assert from "node:assert/strict";
import { readFile } from "node:fs/promises";
import { it } from "node:test";
import type { Command } from "commander";
import { buildProgram } from "./main.ts";
import { REFERENCE_END, REFERENCE_START, cliReference } from "./reference.ts";

it("README's CLI reference matches the command tree (run `npm run docs:cli` to update it)", async () => {
  const readme = await readFile(new URL("../../README.md", import.meta.url), "utf8");
  const start = readme.indexOf(REFERENCE_START);
  const end = readme.indexOf(REFERENCE_END);
  assert.ok(start >= 0 && end > start, "README.md needs the cli-reference markers");
  assert.equal(readme.slice(start, end + REFERENCE_END.length), cliReference(await buildProgram()));
});

it("every command that talks to a coordinator or prints results offers --json", async () => {
  const leaves: string[] = [];
  const visit = (command: Command, path: string) => {
    const children = command.commands.filter((c) => c.name() !== "help");
    if (children.length === 0) {
      if (!command.options.some((o) => o.long === "--json")) leaves.push(path);
      return;
    }
    for (const child of children) visit(child, `${path} ${child.name()}`);
  };
  visit(await buildProgram(), "tandem");
  assert.deepEqual(leaves, []);
});
