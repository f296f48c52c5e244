/**
 * The pure parts of the runtime: reading cgroup layouts (this CI machine's hybrid one, a unified
 * v2 host, a container with a cgroup namespace), choosing where each limit goes, the rlimit
 * fallback plan, and the bwrap command line.
 */
import assert from "node:assert/strict";
import { mkdir, mkdtemp, readdir, rm } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { describe, it } from "node:test";
import { bwrapArgs, generatedEtc, reachableNameservers, type HostLayout } from "./bwrap-args.ts";
import { chooseHierarchies, parseCgroupHierarchies } from "./cgroup-detect.ts";
import { jobCgroupName, sweepStaleCgroups, type JobCgroup } from "./job-cgroup.ts";
import { planLimits } from "./launch.ts";
import { SandboxUids } from "./sandbox-user.ts";

// Measured on the CI machine (MACHINE-NOTES.md): v1 controllers, v2 without controllers.
const HYBRID_MOUNTS = `31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
33 31 0:30 / /sys/fs/cgroup/cpuacct rw,relatime - cgroup cgroup rw,cpuacct
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
39 31 0:36 / /sys/fs/cgroup/pids rw,relatime - cgroup cgroup rw,pids
40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,name=systemd
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw`;
const HYBRID_SELF = `9:name=systemd:/
8:pids:/
4:memory:/process_api/481662e99943ee6122804590278ad988
2:cpuacct:/
1:cpu:/
0::/`;

describe("cgroup detection", () => {
  it("reads the hybrid layout, with the worker's own memory cgroup", () => {
    assert.deepEqual(parseCgroupHierarchies(HYBRID_MOUNTS, HYBRID_SELF), [
      { version: 1, controllers: ["cpu"], ownDir: "/sys/fs/cgroup/cpu" },
      {
        version: 1,
        controllers: ["memory"],
        ownDir: "/sys/fs/cgroup/memory/process_api/481662e99943ee6122804590278ad988",
      },
      { version: 1, controllers: ["pids"], ownDir: "/sys/fs/cgroup/pids" },
      { version: 2, controllers: [], ownDir: "/sys/fs/cgroup/unified" },
    ]);
  });

  it("reads a unified v2 host and a co-mounted cpu,cpuacct v1 tree", () => {
    const mounts = `25 20 0:22 / /sys/fs/cgroup rw,nosuid - cgroup2 cgroup2 rw,nsdelegate
26 20 0:23 / /mnt/v1cpu rw - cgroup cgroup rw,cpu,cpuacct`;
    const self = "0::/system.slice/tandem-worker.service\n3:cpu,cpuacct:/tandem";
    assert.deepEqual(parseCgroupHierarchies(mounts, self), [
      { version: 2, controllers: [], ownDir: "/sys/fs/cgroup/system.slice/tandem-worker.service" },
      { version: 1, controllers: ["cpu"], ownDir: "/mnt/v1cpu/tandem" },
    ]);
  });

  it("maps paths through a mount whose root is not / (a container), and decodes escapes", () => {
    const mounts = "30 20 0:40 /docker/abc /sys/fs/cgroup/my\\040pids rw - cgroup cgroup rw,pids";
    assert.deepEqual(parseCgroupHierarchies(mounts, "5:pids:/docker/abc/worker"), [
      { version: 1, controllers: ["pids"], ownDir: "/sys/fs/cgroup/my pids/worker" },
    ]);
  });

  it("prefers a v2 tree offering the controller, else v1, else nothing", () => {
    const v1 = [
      { version: 1 as const, controllers: ["memory" as const], ownDir: "/v1/memory" },
      { version: 1 as const, controllers: ["pids" as const], ownDir: "/v1/pids" },
    ];
    const v2 = { version: 2 as const, controllers: ["memory" as const], ownDir: "/v2" };
    const chosen = chooseHierarchies([...v1, v2], ["memory", "pids", "cpu"]);
    assert.equal(chosen.get("memory")?.ownDir, "/v2");
    assert.equal(chosen.get("pids")?.ownDir, "/v1/pids");
    assert.equal(chosen.has("cpu"), false);
  });
});

describe("limits plan", () => {
  const cgroup = (enforcedBy: JobCgroup["enforcedBy"]): JobCgroup => ({
    enforcedBy,
    procsFiles: [],
    members: () => Promise.resolve([]),
    oomKilled: () => Promise.resolve(false),
    pidsLimitHit: () => Promise.resolve(false),
    killAll: () => Promise.resolve(),
    remove: () => Promise.resolve(),
  });
  const all = { memoryMiB: 64, cpuCores: 1.5, maxProcesses: 10, maxOpenFiles: 100 };

  it("uses the cgroup for what it enforces and rlimits for open files", () => {
    const plan = planLimits(
      all,
      cgroup({ memory: "cgroup-v1", cpu: "cgroup-v1", pids: "cgroup-v1" }),
      { nprocEnforced: true, prlimit: true },
    );
    assert.deepEqual(plan.enforcedBy, {
      memoryMiB: "cgroup-v1",
      cpuCores: "cgroup-v1",
      maxProcesses: "cgroup-v1",
      maxOpenFiles: "rlimit",
    });
    assert.deepEqual(plan.prlimitArgs, ["--nofile=100:100"]);
  });

  it("falls back to RLIMIT_DATA and RLIMIT_NPROC, and says CPU is unenforced", () => {
    const plan = planLimits(all, undefined, { nprocEnforced: true, prlimit: true });
    assert.deepEqual(plan.enforcedBy, {
      memoryMiB: "rlimit",
      cpuCores: "unenforced",
      maxProcesses: "rlimit",
      maxOpenFiles: "rlimit",
    });
    assert.deepEqual(plan.prlimitArgs, [
      `--data=${64 << 20}:${64 << 20}`,
      "--nproc=10:10",
      "--nofile=100:100",
    ]);
  });

  it("reports rlimits unenforced without prlimit, and nothing for limits not asked for", () => {
    const plan = planLimits({ maxProcesses: 5 }, undefined, {
      nprocEnforced: false,
      prlimit: true,
    });
    assert.deepEqual(plan.enforcedBy, { maxProcesses: "unenforced" });
    assert.deepEqual(
      planLimits({ memoryMiB: 1 }, undefined, { nprocEnforced: true, prlimit: false }).enforcedBy,
      { memoryMiB: "unenforced" },
    );
  });
});

describe("bwrap command line", () => {
  const layout: HostLayout = {
    systemPaths: [{ path: "/usr" }, { path: "/bin", symlinkTarget: "usr/bin" }],
    etcBinds: ["/etc/ld.so.cache", "/etc/hosts", "/etc/resolv.conf"],
    hostname: "supplier-box",
    nameservers: ["9.9.9.9"],
  };
  const base = {
    layout,
    env: { A: "1" },
    jobDir: "/w/jobs/j1",
    devices: [],
    tmpfsSizeMiB: 64,
    statusFd: 3,
    dataFds: new Map([["/etc/passwd", 6]]),
  };

  it("isolates everything, clears the environment and binds only what is listed", () => {
    const args = bwrapArgs({ ...base, network: "none" });
    for (const flag of [
      "--unshare-all",
      "--unshare-user",
      "--disable-userns",
      "--die-with-parent",
      "--new-session",
      "--clearenv",
    ]) {
      assert.ok(args.includes(flag), flag);
    }
    assert.ok(!args.includes("--share-net"));
    assert.ok(
      args.indexOf("--clearenv") < args.indexOf("--setenv"),
      "the environment is cleared first",
    );
    assert.ok(
      !args.some((a, i) => a === "--bind" && args[i + 1] === "/etc"),
      "never the whole /etc",
    );
    assert.ok(!args.includes("/etc/resolv.conf"), "no host DNS config without a network");
    assert.deepEqual(args.slice(args.indexOf("--bind"), args.indexOf("--bind") + 3), [
      "--bind",
      "/w/jobs/j1",
      "/job",
    ]);
    assert.deepEqual(args.slice(args.indexOf("--hostname"), args.indexOf("--hostname") + 2), [
      "--hostname",
      "tandem-job",
    ]);
    assert.ok(
      args.indexOf("--remount-ro") > args.indexOf("--bind"),
      "/ is made read-only after the mounts",
    );
  });

  it('keeps the host network, hostname and name resolution for "shared"', () => {
    const args = bwrapArgs({ ...base, network: "shared" });
    assert.ok(args.includes("--share-net"));
    assert.ok(args.includes("/etc/resolv.conf"));
    assert.deepEqual(args.slice(args.indexOf("--hostname"), args.indexOf("--hostname") + 2), [
      "--hostname",
      "supplier-box",
    ]);
    assert.equal(
      generatedEtc("shared")["/etc/hosts"],
      undefined,
      "the host's /etc/hosts is bound instead",
    );
  });
  it("shares the job's namespace with its own hostname, hosts and reachable nameservers", () => {
    const network = {
      namespace: "/run/netns/tdm-w1-0a0b0c0d",
      hosts: { "tandem-job": "10.77.0.1" },
    };
    const args = bwrapArgs({ ...base, network });
    assert.ok(args.includes("--share-net"));
    assert.ok(!args.includes("/etc/resolv.conf") && !args.includes("/etc/hosts"), "no host files");
    assert.deepEqual(args.slice(args.indexOf("--hostname"), args.indexOf("--hostname") + 2), [
      "--hostname",
      "tandem-job",
    ]);
    const etc = generatedEtc(network, ["9.9.9.9"]);
    assert.equal(etc["/etc/hosts"], "127.0.0.1 localhost\n10.77.0.1 tandem-job\n");
    assert.equal(etc["/etc/resolv.conf"], "nameserver 9.9.9.9\n");
    assert.equal(
      generatedEtc({ namespace: network.namespace }, [])["/etc/resolv.conf"],
      undefined,
      "no reachable nameserver: no resolv.conf",
    );
  });

  it("keeps only nameservers a job namespace can reach", () => {
    const conf =
      "# x\nnameserver 127.0.0.53\nnameserver 192.168.1.1\nnameserver 1.1.1.1\nnameserver ::1\nnameserver 10.0.0.2\n";
    assert.deepEqual(reachableNameservers(conf), ["1.1.1.1"]);
  });
});

describe("sandbox uids", () => {
  it("gives a job a stable uid in the range and never one in use", () => {
    const uids = new SandboxUids({ first: 2_000_000, count: 2 });
    const a = uids.acquire("job_a");
    const b = uids.acquire("job_a");
    assert.notEqual(a, b);
    assert.ok([a, b].every((u) => u >= 2_000_000 && u < 2_000_002));
    assert.throws(() => uids.acquire("job_c"), /no free sandbox uid/);
    uids.release(a);
    assert.equal(uids.acquire("job_c"), a);
  });
});

describe("stale job cgroups", () => {
  it("removes only those of workers that are gone", async () => {
    const dir = await mkdtemp(path.join(os.tmpdir(), "tandem-sweep-"));
    try {
      // pid_max is at most 2^22, so this worker is certainly gone.
      for (const name of ["tandem-99999999-job_a", jobCgroupName("job_b"), "unrelated"])
        await mkdir(path.join(dir, name));
      await sweepStaleCgroups([{ version: 2, controllers: [], ownDir: dir }], () => undefined);
      assert.deepEqual((await readdir(dir)).sort(), [jobCgroupName("job_b"), "unrelated"].sort());
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
