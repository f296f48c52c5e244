/**
 * The bubblewrap sandbox's network modes and a real engine inside it: "shared" keeps the host's
 * network namespace (cluster peers), "none" leaves loopback only; torch and dask import inside.
 */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { chmod, mkdtemp, rm } from "node:fs/promises";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import { createBwrapRuntime } from "./bwrap-runtime.ts";
import { runToEnd, tracking } from "./job-harness.ts";

const runtime = tracking(createBwrapRuntime());
let tmp = "";
before(async () => {
  tmp = await mkdtemp(path.join(os.tmpdir(), "tandem-network-"));
  await chmod(tmp, 0o711);
});
after(async () => {
  await runtime.killAll();
  await rm(tmp, { recursive: true, force: true });
});
const jobDir = (name: string): string => path.join(tmp, name);

describe("bwrap sandbox: network", () => {
  let server: net.Server;
  let port = 0;
  const received: string[] = [];
  before(async () => {
    server = net.createServer((socket) => {
      socket.setEncoding("utf8");
      socket.on("data", (d: string) => received.push(d.trim()));
    });
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    port = (server.address() as net.AddressInfo).port;
  });
  after(() => new Promise<void>((resolve) => server.close(() => resolve())));

  const connect = (word: string): string[] => [
    "bash",
    "-c",
    `exec 3<>/dev/tcp/127.0.0.1/${port} && echo ${word} >&3 && exec 3>&-`,
  ];

  it('"shared" reaches a TCP server on the host\'s 127.0.0.1', async () => {
    const run = await runToEnd(runtime, {
      command: connect("hello-shared"),
      jobDir: jobDir("net-shared"),
      network: "shared",
    });
    assert.equal(run.exit.exitCode, 0, run.stderr);
    for (let i = 0; i < 100 && !received.includes("hello-shared"); i++)
      await new Promise((r) => setImmediate(r));
    assert.ok(received.includes("hello-shared"));
  });

  it('"none" cannot reach it', async () => {
    const run = await runToEnd(runtime, {
      command: connect("hello-none"),
      jobDir: jobDir("net-none"),
      network: "none",
    });
    assert.notEqual(run.exit.exitCode, 0);
    assert.match(run.stderr, /Connection refused/);
    assert.ok(!received.includes("hello-none"));
  });
});

describe("bwrap sandbox: engines", () => {
  it("imports torch and dask distributed inside the sandbox", async (t) => {
    const python = "/usr/bin/python3";
    const probe = spawnSync(python, ["-c", "import torch, distributed"], { stdio: "ignore" });
    if (probe.status !== 0) {
      const reason = `${python} cannot import torch and distributed on this host (python3-torch, python3-distributed)`;
      if (process.env.TANDEM_REQUIRE_ENGINES === "1") assert.fail(reason);
      t.skip(reason);
      return;
    }
    const run = await runToEnd(runtime, {
      command: [
        python,
        "-c",
        "import torch, distributed; print(torch.tensor([1, 2]).sum().item(), distributed.__version__ != '')",
      ],
      jobDir: jobDir("torch"),
      limits: { memoryMiB: 4096, maxProcesses: 512, maxOpenFiles: 4096 },
    });
    assert.equal(run.exit.exitCode, 0, run.stderr);
    assert.equal(run.stdout.trim(), "3 True");
  });
});
