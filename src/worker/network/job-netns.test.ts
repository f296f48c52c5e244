/**
 * A job's network namespace and its isolation rules, made by the worker's code running inside a
 * simulated host (test/support/hosts.ts): what a job can and cannot reach, and that nothing of it
 * survives destroy() or a sweep after a killed worker.
 */
import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import net from "node:net";
import { after, before, describe, it } from "node:test";
import {
  createHosts,
  tcpSend,
  type Hosts,
  type SimulatedHost,
} from "../../../test/support/hosts.ts";
import {
  jobNetworkLeftovers,
  startJobNetworkDriver,
  type JobNetworkDriver,
} from "../../../test/support/job-network-driver.ts";

const jobHost = (name: string): SimulatedHost => ({
  namespace: name,
  address: "",
  publicAddress: "",
  behindNat: false,
});

describe("job network namespaces", { skip: process.getuid?.() !== 0 && "needs root" }, () => {
  let hosts: Hosts;
  let host: SimulatedHost;
  let driver: JobNetworkDriver;
  let tag = "";
  let rootServer: net.Server;
  let rootPort = 0;
  const rootSeen: string[] = [];

  const leftovers = (t: string) => jobNetworkLeftovers(hosts, host, t);

  before(async () => {
    hosts = await createHosts({ hosts: 1 });
    host = hosts.hosts[0]!;
    tag = hosts.workerTag;
    driver = startJobNetworkDriver(hosts, host);
    rootServer = net.createServer((socket) => {
      rootSeen.push(socket.remoteAddress ?? "");
      socket.destroy();
    });
    await new Promise<void>((resolve) => rootServer.listen(0, hosts.rootAddress, resolve));
    rootPort = (rootServer.address() as net.AddressInfo).port;
  });
  after(async () => {
    rootServer.close();
    await hosts.destroy();
  });

  it("with internet: reaches the internet through NAT, and nothing of the host, the coordinator or another job", async () => {
    const job = await driver.create({
      workerTag: tag,
      internet: true,
      blockedCidrs: [`${hosts.rootAddress}/32`],
    });
    const other = await driver.create({ workerTag: tag, internet: true });
    try {
      const inJob = jobHost(job.name);
      const hostServer = await hosts.listen(host, 7101);
      const otherServer = await hosts.listen(jobHost(other.name), 7102);
      const internet = await hosts.listen(hosts.internet, 7103);

      await hosts.exec(inJob, tcpSend(hosts.internet.address, 7103, "out"));
      assert.equal(await internet.waitFor(/out/), `${host.publicAddress} out`);

      const unreachable: Array<[string, number]> = [
        ["127.0.0.1", 7101],
        [host.address, 7101],
        [job.link!.gateway, 7101],
        [hosts.rootAddress, rootPort],
        [other.link!.address, 7102],
        [other.link!.gateway, 7101],
      ];
      for (const [address, port] of unreachable) {
        const attempt = await hosts.tryExec(inJob, tcpSend(address, port, "escape", 2));
        assert.notEqual(attempt.code, 0, `the job reached ${address}:${port}`);
      }
      // The same servers answer from outside the job: only the job's rules kept it out. (The host
      // reaches no job either: the job's replies to it are input from its veth, dropped.)
      await hosts.exec(host, tcpSend(host.address, 7101, "from-host"));
      await hosts.exec(jobHost(other.name), tcpSend(other.link!.address, 7102, "from-itself"));
      await hosts.exec(host, tcpSend(hosts.rootAddress, rootPort, "from-host"));
      assert.ok(await otherServer.waitFor(/from-itself/));
      assert.deepEqual(
        hostServer.received.filter((r) => r.includes("escape")),
        [],
      );
      assert.deepEqual(
        otherServer.received.filter((r) => r.includes("escape")),
        [],
      );
      assert.deepEqual(rootSeen, [host.address]);

      // Nothing opens a connection into a job, even from a neighbour routing to it through the host.
      const jobServer = await hosts.listen(inJob, 7106);
      await hosts.exec(hosts.internet, [
        "ip",
        "route",
        "add",
        `${job.link!.address}/32`,
        "via",
        host.address,
      ]);
      const inbound = await hosts.tryExec(
        hosts.internet,
        tcpSend(job.link!.address, 7106, "inbound", 2),
      );
      assert.notEqual(inbound.code, 0, "a neighbour opened a connection into the job");
      assert.deepEqual(jobServer.received, []);

      const v6 = await hosts.tryExec(inJob, ["sysctl", "-n", "net.ipv6.conf.all.disable_ipv6"]);
      assert.equal(v6.stdout.trim(), "1");
    } finally {
      await driver.destroy(job.name);
      await driver.destroy(other.name);
    }
    assert.deepEqual(await leftovers(tag), []);
  });

  it("without internet: loopback only, nothing leaves", async () => {
    const job = await driver.create({ workerTag: tag, internet: false });
    try {
      assert.equal(job.link, undefined);
      const internet = await hosts.listen(hosts.internet, 7104);
      const attempt = await hosts.tryExec(
        jobHost(job.name),
        tcpSend(hosts.internet.address, 7104, "x", 2),
      );
      assert.notEqual(attempt.code, 0);
      assert.deepEqual(internet.received, []);
      const { stdout } = await hosts.exec(jobHost(job.name), ["ip", "-o", "link", "show"]);
      assert.deepEqual(
        stdout
          .trim()
          .split("\n")
          .map((l) => l.split(":")[1]!.trim()),
        ["lo"],
      );
    } finally {
      await driver.destroy(job.name);
    }
    assert.ok(!existsSync(`/run/netns/${job.name}`));
  });

  it("destroy is idempotent and leaves no namespace, veth or table", async () => {
    const job = await driver.create({ workerTag: tag, internet: true });
    assert.equal((await leftovers(tag)).length, 3);
    await driver.destroy(job.name);
    await driver.destroy(job.name);
    assert.deepEqual(await leftovers(tag), []);
  });

  it("a network the watchdog removed first is no error to its owner's destroy", async () => {
    const job = await driver.create({ workerTag: tag, internet: true });
    const removed = await driver.request({ op: "remove", name: job.name });
    assert.deepEqual(removed, { ok: true, removed: true });
    assert.deepEqual(await leftovers(tag), []);
    await driver.destroy(job.name);
    const other = await driver.request({ op: "remove", name: "not-a-job-network" });
    assert.deepEqual(other, { ok: true, removed: false });
  });

  it("bad options are refused with a typed error and change nothing", async () => {
    const before = await leftovers(tag);
    for (const options of [
      { workerTag: "Bad-Tag", internet: true },
      { workerTag: tag, internet: true, blockedCidrs: ["198.18.0.1/33"] },
      { workerTag: tag, internet: true, blockedCidrs: ['1.2.3.4" ; flush ruleset'] },
    ]) {
      const answer = await driver.request({ op: "create", options });
      assert.equal(answer.ok, false);
      assert.equal(answer.code, "INVALID_NETWORK_OPTIONS");
    }
    assert.deepEqual(await leftovers(tag), before);
  });

  it("a sweep at the next start removes what a killed worker left, and only its own", async () => {
    const killed = startJobNetworkDriver(hosts, host);
    await killed.create({ workerTag: tag, internet: true });
    await killed.create({ workerTag: tag, internet: false });
    const neighbour = await driver.create({ workerTag: `${tag}n`, internet: true });
    await new Promise((resolve) => {
      killed.child.once("close", resolve);
      killed.child.kill("SIGKILL");
    });
    assert.equal((await leftovers(tag)).length, 4);
    const answer = await driver.request({ op: "sweep", workerTag: tag });
    const swept = answer.swept as { namespaces: string[]; veths: string[]; tables: string[] };
    assert.deepEqual([swept.namespaces.length, swept.veths.length, swept.tables.length], [2, 1, 1]);
    assert.deepEqual(await leftovers(tag), []);
    assert.equal((await leftovers(`${tag}n`)).length, 3);
    await driver.destroy(neighbour.name);
  });

  it("a worker's start-up blocks its coordinator's address for every rank network", async () => {
    const coordinatorUrl = `http://${hosts.rootAddress}:${rootPort}`;
    const answer = await driver.request({
      op: "setup",
      home: `/var/lib/tandem-test-${hosts.prefix}`,
      coordinatorUrl,
      spec: { internet: true, overlay: false },
    });
    assert.equal(answer.ok, true, JSON.stringify(answer));
    const name = answer.name as string;
    const workerTag = answer.workerTag as string;
    try {
      assert.match(workerTag, /^[0-9a-f]{8}$/);
      assert.deepEqual(answer.capability, { isolation: true, overlay: null, problems: [] });
      const seen = rootSeen.length;
      const attempt = await hosts.tryExec(
        jobHost(name),
        tcpSend(hosts.rootAddress, rootPort, "x", 2),
      );
      assert.notEqual(attempt.code, 0, "the job reached the coordinator");
      assert.equal(rootSeen.length, seen);
      const internet = await hosts.listen(hosts.internet, 7105);
      await hosts.exec(jobHost(name), tcpSend(hosts.internet.address, 7105, "setup-out"));
      assert.ok(await internet.waitFor(/setup-out/));
    } finally {
      await driver.destroy(name);
    }
    assert.deepEqual(await leftovers(workerTag), []);
  });

  it("the capability probe makes and removes one job network", async () => {
    const answer = await driver.request({ op: "probe" });
    assert.deepEqual(answer.capability, { isolation: true, overlay: null, problems: [] });
    assert.deepEqual(await leftovers("probe"), []);
  });
});
