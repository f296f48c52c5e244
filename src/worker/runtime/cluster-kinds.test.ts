/**
 * Cluster kinds through the real sandbox: each rank of a node is its own bwrap job with network
 * "shared", as on a supplier's machine. Two ranks on this machine stand in for two nodes.
 * Engines come from Debian (python3-torch, python3-distributed); a missing engine skips with its
 * reason unless TANDEM_REQUIRE_ENGINES=1, and ray runs only where `ray` is on PATH.
 */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { chmod, mkdtemp, rm } from "node:fs/promises";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import { after, before, describe, it, type TestContext } from "node:test";
import { createBwrapRuntime } from "./bwrap-runtime.ts";
import { nodeProcesses, rendezvousEnv, type Rendezvous } from "./cluster-kinds.ts";
import { finish, runToEnd, tracking } from "./job-harness.ts";
import { JobRuntimeError } from "./job-runtime.ts";

const PYTHON = "/usr/bin/python3";
const runtime = tracking(createBwrapRuntime());
let tmp = "";
before(async () => {
  tmp = await mkdtemp(path.join(os.tmpdir(), "tandem-kinds-"));
  await chmod(tmp, 0o711);
});
after(async () => {
  await runtime.killAll();
  await rm(tmp, { recursive: true, force: true });
});

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer().listen(0, "127.0.0.1", () => {
      const { port } = server.address() as net.AddressInfo;
      server.close(() => resolve(port));
    });
    server.on("error", reject);
  });
}

/** Skips (or fails, under TANDEM_REQUIRE_ENGINES=1) when `module` does not import here. */
function needsPython(t: TestContext, module: string): boolean {
  if (spawnSync(PYTHON, ["-c", `import ${module}`], { stdio: "ignore" }).status === 0) return true;
  const reason = `${PYTHON} cannot import ${module} (Debian: python3-torch, python3-distributed)`;
  if (process.env.TANDEM_REQUIRE_ENGINES === "1") assert.fail(reason);
  t.skip(reason);
  return false;
}

const rendezvous = (rank: number, headPort: number): Rendezvous => ({
  clusterId: "clu_test",
  rank,
  worldSize: 2,
  headAddr: "127.0.0.1",
  headPort,
  gpuIndexes: [],
});

describe("cluster kinds", () => {
  it("gives every process the rendezvous environment", () => {
    assert.deepEqual(rendezvousEnv({ ...rendezvous(1, 29500), gpuIndexes: [0, 2] }), {
      TANDEM_CLUSTER_ID: "clu_test",
      TANDEM_RANK: "1",
      TANDEM_WORLD_SIZE: "2",
      TANDEM_HEAD_ADDR: "127.0.0.1",
      MASTER_ADDR: "127.0.0.1",
      MASTER_PORT: "29500",
      RANK: "1",
      WORLD_SIZE: "2",
      LOCAL_RANK: "0",
      LOCAL_WORLD_SIZE: "1",
      CUDA_VISIBLE_DEVICES: "0,2",
    });
    assert.deepEqual(
      nodeProcesses("batch", rendezvous(1, 1), ["echo", "hi"]).map((p) => [p.role, p.command]),
      [["main", ["echo", "hi"]]],
    );
  });

  it("refuses container clusters without a podman runtime", () => {
    assert.throws(
      () => nodeProcesses("container", rendezvous(0, 1), ["true"]),
      (e: unknown) => e instanceof JobRuntimeError && e.code === "RUNTIME_UNAVAILABLE",
    );
  });

  it("torch: two sandboxed ranks all-reduce over gloo", async (t) => {
    if (!needsPython(t, "torch")) return;
    const port = await freePort();
    const script =
      "import os, torch, torch.distributed as dist; dist.init_process_group('gloo'); " +
      "t = torch.tensor([float(os.environ['RANK']) + 1]); dist.all_reduce(t); print(t.item())";
    const runs = await Promise.all(
      [0, 1].map((rank) => {
        const [rankProcess] = nodeProcesses("torch", rendezvous(rank, port), [
          PYTHON,
          "-c",
          script,
        ]);
        assert.ok(rankProcess !== undefined);
        return runToEnd(runtime, {
          command: rankProcess.command,
          env: rankProcess.env,
          jobDir: path.join(tmp, `torch-${rank}`),
          network: "shared",
        });
      }),
    );
    for (const run of runs) {
      assert.equal(run.exit.exitCode, 0, run.stderr);
      assert.equal(run.stdout, "3.0\n", "1 + 2 on every rank");
    }
  });

  it("dask: scheduler and client on the head, a worker on the other node", async (t) => {
    if (!needsPython(t, "distributed")) return;
    const port = await freePort();
    const client =
      "from distributed import Client; c = Client(timeout=60); c.wait_for_workers(1, timeout=60); " +
      "print(c.submit(sum, [1, 2, 3]).result(), len(c.scheduler_info()['workers']))";
    const head = nodeProcesses("dask", rendezvous(0, port), [PYTHON, "-c", client]);
    const other = nodeProcesses("dask", rendezvous(1, port), []);
    assert.deepEqual(
      [...head, ...other].map((p) => `${p.role}:${p.name}`),
      ["service:dask-scheduler", "main:command", "service:dask-worker"],
    );
    const services = await Promise.all(
      [head[0], other[0]].map((p, i) => {
        assert.ok(p !== undefined);
        return runtime.run({
          jobId: `job_dask_${i}_${process.pid}`,
          command: p.command,
          env: p.env,
          jobDir: path.join(tmp, `dask-${p.name}`),
          limits: {},
          network: "shared",
        });
      }),
    );
    const serviceOutput = services.map((s) => finish(s));
    const main = head[1];
    assert.ok(main !== undefined);
    const run = await runToEnd(runtime, {
      command: main.command,
      env: main.env,
      jobDir: path.join(tmp, "dask-main"),
      network: "shared",
    });
    await Promise.all(services.map((s) => s.kill(5_000)));
    await Promise.all(serviceOutput);
    assert.equal(run.exit.exitCode, 0, run.stderr);
    assert.equal(run.stdout, "6 1\n", "the sum, computed by the one worker");
  });

  it("ray: the head stays up in the sandbox until the cluster ends", async (t) => {
    if (spawnSync("ray", ["--version"], { stdio: "ignore" }).status !== 0) {
      t.skip("`ray` is not on PATH here (no Debian package); the ray kind is built but not run");
      return;
    }
    const port = await freePort();
    const [service] = nodeProcesses("ray", rendezvous(0, port), ["true"]);
    assert.ok(service !== undefined);
    const job = await runtime.run({
      jobId: `job_ray_${process.pid}`,
      command: service.command,
      env: service.env,
      jobDir: path.join(tmp, "ray"),
      limits: {},
      network: "shared",
    });
    const out = finish(job);
    await job.kill(10_000);
    const run = await out;
    assert.notEqual(run.exit.signal, null, `ray start --head ended by itself: ${run.stderr}`);
  });
});
