import assert from "node:assert/strict";
import { it } from "node:test";
import { Command } from "commander";
import { COMMANDS, entriesFor } from "./main.ts";

it("each entry of the command table registers exactly the top-level commands it names", async () => {
  for (const entry of COMMANDS) {
    const program = new Command("tandem");
    (await entry.load())(program);
    assert.deepEqual(
      program.commands.map((c) => c.name()),
      entry.names,
    );
  }
});

it("a command loads its own entry, --version none, help and anything unknown all", () => {
  const names = (...args: string[]) => entriesFor(["node", "tandem", ...args]).map((e) => e.names);
  assert.deepEqual(names("nodes", "list", "--json"), [["nodes"]]);
  assert.deepEqual(names("cluster", "show", "c_1"), [["search", "cluster"]]);
  assert.deepEqual(names("keys", "list"), [["login", "account", "keys"]]);
  assert.deepEqual(names("--version"), []);
  assert.deepEqual(names("-V"), []);
  const all = COMMANDS.map((e) => e.names);
  assert.deepEqual(names(), all);
  assert.deepEqual(names("--help"), all);
  assert.deepEqual(names("help", "nodes"), all);
  assert.deepEqual(names("nodez", "list"), all, "commander suggests `nodes` from the whole tree");
});
