/**
 * The runtimes inside a job's own network namespace (made by the worker's code in a simulated
 * host, test/support/hosts.ts): the sandbox sees only that namespace's interfaces, reaches the
 * internet through its NAT and nothing on the test machine's loopback, and resolves the names it
 * was given.
 */
import assert from "node:assert/strict";
import { chmod, mkdtemp, rm } from "node:fs/promises";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import { createHosts, tcpSend, type Hosts } from "../../../test/support/hosts.ts";
import { startJobNetworkDriver } from "../../../test/support/job-network-driver.ts";
import { createBwrapRuntime } from "./bwrap-runtime.ts";
import { runToEnd, tracking } from "./job-harness.ts";
import type { JobNamespaceNetwork } from "./job-runtime.ts";
import { createProcessRuntime } from "./process-runtime.ts";

const interfaces = ["bash", "-c", "tail -n +3 /proc/net/dev | cut -d: -f1 | tr -d ' ' | sort"];

describe("runtimes in a job namespace", { skip: process.getuid?.() !== 0 && "needs root" }, () => {
  const bwrap = tracking(createBwrapRuntime());
  const plain = tracking(createProcessRuntime());
  let hosts: Hosts;
  let tmp = "";
  let network: JobNamespaceNetwork;
  let loopbackServer: net.Server;
  let loopbackPort = 0;
  const loopbackSeen: string[] = [];

  before(async () => {
    tmp = await mkdtemp(path.join(os.tmpdir(), "tandem-job-netns-"));
    await chmod(tmp, 0o711);
    hosts = await createHosts({ hosts: 1 });
    const driver = startJobNetworkDriver(hosts, hosts.hosts[0]!);
    const job = await driver.create({ workerTag: hosts.workerTag, internet: true });
    network = { namespace: job.path, hosts: { "tandem-job": "10.77.0.1", "rank-1": "10.77.0.2" } };
    loopbackServer = net.createServer((socket) => {
      loopbackSeen.push(socket.remoteAddress ?? "");
      socket.destroy();
    });
    await new Promise<void>((resolve) => loopbackServer.listen(0, "127.0.0.1", resolve));
    loopbackPort = (loopbackServer.address() as net.AddressInfo).port;
  });
  after(async () => {
    await bwrap.killAll();
    await plain.killAll();
    loopbackServer.close();
    await hosts.destroy(); // the job namespace's driver is killed; its namespace goes with the host
    await rm(tmp, { recursive: true, force: true });
  });

  it("bwrap: only the namespace's interfaces, the internet through NAT, not the host's loopback", async () => {
    const internet = await hosts.listen(hosts.internet, 7201);
    const run = await runToEnd(bwrap, {
      command: [
        "bash",
        "-c",
        `${interfaces[2]} && exec 3<>/dev/tcp/${hosts.internet.address}/7201 && echo from-sandbox >&3`,
      ],
      jobDir: path.join(tmp, "bwrap-out"),
      network,
    });
    assert.equal(run.exit.exitCode, 0, run.stderr);
    assert.deepEqual(run.stdout.trim().split("\n"), ["eth0", "lo"]);
    assert.equal(
      await internet.waitFor(/from-sandbox/),
      `${hosts.hosts[0]!.publicAddress} from-sandbox`,
    );

    const escape = await runToEnd(bwrap, {
      command: tcpSend("127.0.0.1", loopbackPort, "escape", 2),
      jobDir: path.join(tmp, "bwrap-escape"),
      network,
    });
    assert.notEqual(escape.exit.exitCode, 0);
    assert.deepEqual(loopbackSeen, []);
  });

  it("bwrap: resolves the names given in the job's /etc/hosts", async () => {
    const run = await runToEnd(bwrap, {
      command: [
        "bash",
        "-c",
        "cat /proc/sys/kernel/hostname && getent hosts tandem-job rank-1 localhost",
      ],
      jobDir: path.join(tmp, "bwrap-hosts"),
      network,
    });
    assert.equal(run.exit.exitCode, 0, run.stderr);
    assert.deepEqual(
      run.stdout
        .trim()
        .split("\n")
        .map((l) => l.split(/\s+/).join(" ")),
      ["tandem-job", "10.77.0.1 tandem-job", "10.77.0.2 rank-1", "127.0.0.1 localhost"],
    );
  });

  it("the process runtime runs in the namespace too", async () => {
    const run = await runToEnd(plain, {
      command: interfaces,
      jobDir: path.join(tmp, "process"),
      network,
    });
    assert.equal(run.exit.exitCode, 0, run.stderr);
    assert.deepEqual(run.stdout.trim().split("\n"), ["eth0", "lo"]);
  });

  it("refuses a namespace outside /run/netns and bad hosts entries, starting nothing", async () => {
    for (const bad of [
      { namespace: "/proc/1/ns/net" },
      { namespace: network.namespace, hosts: { "bad name": "10.77.0.1" } },
      { namespace: network.namespace, hosts: { ok: "10.77.0.1\n1.2.3.4 evil" } },
    ]) {
      await assert.rejects(
        bwrap.run({
          jobId: "job_bad",
          command: ["true"],
          env: {},
          jobDir: path.join(tmp, "bad"),
          limits: {},
          network: bad,
        }),
        { code: "INVALID_JOB_SPEC" },
      );
    }
  });
});
