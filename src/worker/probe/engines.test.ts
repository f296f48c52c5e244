import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { existsSync } from "node:fs";
import { chmod, mkdtemp, rm, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import { probeEngines } from "./engines.ts";

let tmp = "";
before(async () => {
  tmp = await mkdtemp(path.join(os.tmpdir(), "tandem-engines-"));
});
after(async () => {
  await rm(tmp, { recursive: true, force: true });
});

/** A fake interpreter: a shell script that answers `body` whatever it is asked. */
async function fakePython(name: string, body: string): Promise<string> {
  const file = path.join(tmp, name);
  await writeFile(file, `#!/bin/sh\n${body}\n`);
  await chmod(file, 0o755);
  return file;
}

describe("probeEngines", () => {
  it("lists the engines whose modules the interpreter finds, dask only with distributed", async () => {
    const python = await fakePython("some", `echo '["torch", "dask", "ray"]'`);
    assert.deepEqual(await probeEngines({ python, podman: false }), ["torch", "ray"]);
    const all = await fakePython("all", `echo '["torch", "dask", "distributed", "ray"]'`);
    assert.deepEqual(await probeEngines({ python: all, podman: true }), [
      "torch",
      "dask",
      "ray",
      "podman",
    ]);
  });

  it("asks one process for every module, and ignores names it did not ask", async () => {
    // The script answers every module it is asked, and one more nobody asked.
    const echo = await fakePython(
      "echo",
      `shift 3; printf '['; for m in "$@"; do printf '"%s",' "$m"; done; echo '"jax"]'`,
    );
    assert.deepEqual(await probeEngines({ python: echo, podman: false }), ["torch", "dask", "ray"]);
  });

  it("reports no Python engine, with a warning, when the interpreter is missing, fails, answers nonsense or hangs", async () => {
    const cases = [
      path.join(tmp, "no-such-python"),
      await fakePython("fails", "exit 3"),
      await fakePython("nonsense", "echo hello"),
      await fakePython("hangs", "exec sleep 30"),
    ];
    for (const python of cases) {
      const warnings: string[] = [];
      const started = Date.now();
      const engines = await probeEngines({
        python,
        podman: true,
        timeoutMs: 500,
        onWarning: (w) => warnings.push(w),
      });
      assert.deepEqual(engines, ["podman"], python);
      assert.equal(warnings.length, 1, python);
      assert.ok(Date.now() - started < 5000, "bounded in time");
    }
  });

  it(
    "agrees with real imports in Debian's /usr/bin/python3 (torch and dask here; Ray where installed)",
    { skip: !existsSync("/usr/bin/python3") && "no /usr/bin/python3" },
    async () => {
      const engines = await probeEngines({ python: "/usr/bin/python3", podman: false });
      const imports = (modules: string) =>
        spawnSync("/usr/bin/python3", ["-c", `import ${modules}`]).status === 0;
      assert.equal(engines.includes("dask"), imports("dask, distributed"), String(engines));
      assert.equal(engines.includes("ray"), imports("ray"), String(engines));
    },
  );
});
