/**
 * The multi-host harness itself: hosts reach each other, the root namespace's address and the
 * "internet"; a NATed host reaches out (seen at its NAT's address) but nobody reaches it.
 */
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { existsSync } from "node:fs";
import net from "node:net";
import { after, before, describe, it } from "node:test";
import { createHosts, tcpSend, type Hosts } from "./hosts.ts";

describe("simulated hosts", { skip: process.getuid?.() !== 0 && "needs root" }, () => {
  let hosts: Hosts;
  before(async () => {
    hosts = await createHosts({ hosts: 3, natHosts: 1 });
  });
  after(async () => {
    await hosts.destroy();
  });

  it("gives each host its own address; the last one sits behind NAT", () => {
    const [h1, h2, h3] = hosts.hosts;
    assert.equal(hosts.hosts.length, 3);
    assert.match(h1!.address, /^198\.18\.\d+\.11$/);
    assert.match(h2!.address, /^198\.18\.\d+\.12$/);
    assert.equal(h3!.address, "192.168.77.2");
    assert.equal(h3!.behindNat, true);
    assert.notEqual(h3!.publicAddress, h3!.address);
  });

  it("hosts reach each other and the internet", async () => {
    const [h1, h2] = hosts.hosts;
    const server = await hosts.listen(h2!, 7001);
    await hosts.exec(h1!, tcpSend(h2!.address, 7001, "from-h1"));
    assert.equal(await server.waitFor(/from-h1/), `${h1!.address} from-h1`);
    const internet = await hosts.listen(hosts.internet, 7002);
    await hosts.exec(h2!, tcpSend(hosts.internet.address, 7002, "from-h2"));
    assert.equal(await internet.waitFor(/from-h2/), `${h2!.address} from-h2`);
  });

  it("every host, the NATed one too, reaches the root namespace's address", async () => {
    const seen: string[] = [];
    const server = net.createServer((socket) => {
      socket.setEncoding("utf8");
      socket.on("data", (d: string) => seen.push(`${socket.remoteAddress} ${d.trim()}`));
    });
    await new Promise<void>((resolve) => server.listen(0, hosts.rootAddress, resolve));
    const { port } = server.address() as net.AddressInfo;
    try {
      for (const [i, host] of hosts.hosts.entries())
        await hosts.exec(host, tcpSend(hosts.rootAddress, port, `h${i + 1}`));
      for (let i = 0; i < 200 && seen.length < 3; i++) await new Promise((r) => setTimeout(r, 10));
      assert.deepEqual(
        seen.sort(),
        hosts.hosts.map((h, i) => `${h.publicAddress} h${i + 1}`).sort(),
      );
    } finally {
      server.close();
    }
  });

  it("the NATed host reaches out but cannot be reached", async () => {
    const [h1, , natted] = hosts.hosts;
    const server = await hosts.listen(natted!, 7003);
    for (const address of [natted!.address, natted!.publicAddress]) {
      const attempt = await hosts.tryExec(h1!, tcpSend(address, 7003, "inbound", 2));
      assert.notEqual(attempt.code, 0, `h1 reached the NATed host at ${address}`);
    }
    assert.deepEqual(server.received, []);
    const internet = await hosts.listen(hosts.internet, 7004);
    await hosts.exec(natted!, tcpSend(hosts.internet.address, 7004, "outbound"));
    assert.equal(await internet.waitFor(/outbound/), `${natted!.publicAddress} outbound`);
  });

  it("the root namespace gains one veth and nothing else; destroy removes everything", async () => {
    const extra = await createHosts({ hosts: 1 });
    const rootLinks = execFileSync("ip", ["-o", "link", "show"], { encoding: "utf8" });
    assert.equal(rootLinks.split("\n").filter((l) => l.includes(extra.prefix)).length, 1);
    const routes = execFileSync("ip", ["-4", "route", "show", "dev", `${extra.prefix}r`], {
      encoding: "utf8",
    });
    assert.equal(routes.trim().split("\n").length, 1, routes);
    assert.match(routes, /^198\.18\.\d+\.0\/24 proto kernel scope link/);
    await extra.destroy();
    await extra.destroy();
    assert.ok(
      !execFileSync("ip", ["-o", "link", "show"], { encoding: "utf8" }).includes(extra.prefix),
    );
    assert.ok(!existsSync(`/run/netns/${extra.prefix}-wan`));
    assert.ok(!execFileSync("ip", ["netns", "list"], { encoding: "utf8" }).includes(extra.prefix));
  });
});
