/**
 * Real overlays between namespaces that play two hosts: hosts A and B are namespaces joined by a
 * veth (172.31.77.1 ↔ .2, plus .3 on B for a rank that moves), each rank's job runs in a namespace
 * of its own. Nothing here touches the root namespace; every namespace carries this run's prefix
 * and is deleted in `after()`, whatever happened.
 */
import assert from "node:assert/strict";
import { execFileSync, spawn } from "node:child_process";
import { existsSync, readFileSync, readdirSync } from "node:fs";
import { after, before, describe, it } from "node:test";
import { setTimeout as delay } from "node:timers/promises";
import { overlayAddressOf, type OverlayPeer } from "../../protocol/cluster-network.ts";
import { PeerListError } from "./overlay-peers.ts";
import { OverlayError, createOverlay, probeWireguard, type Overlay } from "./wireguard-overlay.ts";

const P = `wgt${process.pid.toString(36)}`;
const ns = (name: string) => `${P}-${name}`;
const made: string[] = [];
const overlays: Overlay[] = [];

function sh(argv: string[], input?: string): string {
  return execFileSync(argv[0]!, argv.slice(1), {
    encoding: "utf8",
    ...(input === undefined ? {} : { input }),
  });
}
const inNs = (name: string, argv: string[]) => sh(["ip", "netns", "exec", ns(name), ...argv]);
function addNs(name: string): string {
  sh(["ip", "netns", "add", ns(name)]);
  made.push(ns(name));
  inNs(name, ["ip", "link", "set", "lo", "up"]);
  return ns(name);
}

/** A veth between two of this run's namespaces, each end addressed and up. */
function veth(a: [string, string, string], b: [string, string, string]): void {
  sh(["ip", "-n", ns(a[0]), "link", "add", a[1], "type", "veth", "peer", "name", b[1]]);
  sh(["ip", "-n", ns(a[0]), "link", "set", b[1], "netns", ns(b[0])]);
  for (const [name, ifName, cidr] of [a, b]) {
    inNs(name, ["ip", "addr", "add", cidr, "dev", ifName]);
    inNs(name, ["ip", "link", "set", ifName, "up"]);
  }
}

/** Destroys every overlay and deletes every namespace made so far (those a test deleted too). */
async function removeAll(): Promise<void> {
  await Promise.allSettled(overlays.splice(0).map((o) => o.destroy()));
  for (const name of made.splice(0).reverse())
    try {
      sh(["ip", "netns", "del", name]);
    } catch {
      continue; // a test deleted it already
    }
}

const SERVER = `const net=require("net");net.createServer(s=>s.pipe(s)).listen(7000,process.argv[1],()=>console.log("ready"))`;
const CLIENT = `const s=require("net").connect(7000,process.argv[1],()=>s.end("hello"));let got="";
s.on("data",d=>got+=d);s.on("end",()=>{console.log(got);process.exit(got==="hello"?0:1)});
s.on("error",e=>{console.log(e.code);process.exit(1)});setTimeout(()=>{console.log("timeout");process.exit(1)},Number(process.argv[2]))`;

/** Runs `body` while an echo server listens on `address`:7000 in job namespace `job`. */
async function withEchoServer(job: string, address: string, body: () => Promise<void>) {
  const child = spawn("ip", ["netns", "exec", ns(job), process.execPath, "-e", SERVER, address], {
    stdio: ["ignore", "pipe", "inherit"],
  });
  try {
    await new Promise<void>((resolve, reject) => {
      child.stdout.once("data", () => resolve());
      child.once("exit", (code) => reject(new Error(`echo server ended (${code})`)));
    });
    await body();
  } finally {
    child.kill("SIGKILL");
  }
}

/** Whether a TCP echo from `job` to `address`:7000 comes back within `deadlineMs`. */
function echoes(job: string, address: string, deadlineMs = 4000): Promise<boolean> {
  const child = spawn(
    "ip",
    ["netns", "exec", ns(job), process.execPath, "-e", CLIENT, address, String(deadlineMs)],
    { stdio: "ignore" },
  );
  return new Promise((resolve) => child.on("exit", (code) => resolve(code === 0)));
}

const peerOf = (rank: number, o: Overlay, address: string): OverlayPeer => ({
  rank,
  publicKey: o.publicKey,
  overlayAddress: overlayAddressOf(rank),
  endpoint: { address, port: o.listenPort },
});
const wgPeers = (o: Overlay) =>
  sh(["wg", "show", o.deviceName, "peers"]).split("\n").filter(Boolean);

/** Whether anything of `o` is left: its control socket, its process, its device in `job`. */
function leftovers(o: Overlay, job: string): string[] {
  const left: string[] = [];
  if (existsSync(`/var/run/wireguard/${o.deviceName}.sock`)) left.push("control socket");
  for (const pid of readdirSync("/proc").filter((d) => /^\d+$/.test(d))) {
    try {
      const cmdline = readFileSync(`/proc/${pid}/cmdline`, "utf8");
      const state = /^State:\s+(\w)/m.exec(readFileSync(`/proc/${pid}/status`, "utf8"))?.[1];
      if (cmdline.includes(o.deviceName) && state !== "Z") left.push(`process ${pid}`);
    } catch {
      continue; // the process ended while we looked
    }
  }
  if (made.includes(ns(job)) && existsSync(`/var/run/netns/${ns(job)}`)) {
    const links = inNs(job, ["ip", "-o", "link"]);
    if (links.includes("tandem0") || links.includes(o.deviceName)) left.push("device");
  }
  return left;
}

describe("WireGuard overlay between two simulated hosts", () => {
  before(() => {
    addNs("hA");
    addNs("hB");
    veth(["hA", `${P}a`, "172.31.77.1/24"], ["hB", `${P}b`, "172.31.77.2/24"]);
    inNs("hB", ["ip", "addr", "add", "172.31.77.3/24", "dev", `${P}b`]);
    for (const job of ["j0", "j1", "j1b", "jx", "jgone", "jbusy", "jkill", "jp0", "jp1", "jp2"])
      addNs(job);
  });
  after(removeAll);

  const ports = { from: 52820, to: 52829 };
  let rank0: Overlay;
  let rank1: Overlay;

  it("probes wireguard-go (or the kernel module) on this machine", async () => {
    const probe = await probeWireguard();
    assert.notEqual(probe.kind, null, probe.problem ?? "");
    const none = await probeWireguard({ wireguardGo: "/nonexistent/wireguard-go" });
    if (probe.kind === "wireguard-go") {
      assert.equal(none.kind, null);
      assert.match(none.problem ?? "", /no WireGuard kernel module .* and no wireguard-go/);
      assert.ok((none.problem ?? "").length <= 300);
    }
  });

  it("carries TCP between ranks on two hosts, and only across the overlay", async () => {
    rank0 = await createOverlay({
      jobNetns: ns("j0"),
      hostNetns: ns("hA"),
      rank: 0,
      listenPorts: ports,
    });
    overlays.push(rank0);
    rank1 = await createOverlay({
      jobNetns: ns("j1"),
      hostNetns: ns("hB"),
      rank: 1,
      listenPorts: ports,
    });
    overlays.push(rank1);
    assert.equal(rank0.listenPort, 52820);
    assert.match(inNs("j0", ["ip", "-o", "addr", "show", "dev", "tandem0"]), /10\.77\.0\.1\/16/);
    assert.match(inNs("j1", ["ip", "-o", "link", "show", "dev", "tandem0"]), /,UP,.*mtu 1420 /);
    assert.match(inNs("hA", ["ss", "-uan"]), /:52820\b/, "the encrypted UDP stays on the host");
    assert.doesNotMatch(inNs("j0", ["ss", "-uan"]), /:52820\b/);

    await rank0.setPeers([peerOf(1, rank1, "172.31.77.2")]);
    await rank1.setPeers([peerOf(0, rank0, "172.31.77.1")]);
    // The keepalive starts the handshake as soon as both know each other, before any traffic.
    assert.equal(await rank1.handshaken(rank0.publicKey, 5000), true);
    assert.equal(await rank1.handshaken(`${"Z".repeat(42)}A=`, 50), false, "no such peer");
    await withEchoServer("j1", "10.77.0.2", async () => {
      assert.equal(await echoes("j0", "10.77.0.2"), true);
    });
    assert.deepEqual(wgPeers(rank0), [rank1.publicKey]);
    assert.match(sh(["wg", "show", rank0.deviceName, "persistent-keepalive"]), /\t25\n/);
  });

  it("refuses a peer list that does not verify and changes nothing", async () => {
    const before = sh(["wg", "showconf", rank0.deviceName]);
    const bad = [
      peerOf(1, rank1, "172.31.77.2"),
      { ...peerOf(2, rank1, "172.31.77.2"), publicKey: rank0.publicKey },
    ];
    await assert.rejects(rank0.setPeers(bad), (error: unknown) => {
      assert.ok(error instanceof PeerListError);
      assert.equal(error.defect, "SELF_KEY");
      return true;
    });
    await assert.rejects(rank0.setPeers([{ ...peerOf(1, rank1, "224.0.0.1") }]), PeerListError);
    assert.equal(sh(["wg", "showconf", rank0.deviceName]), before);
  });

  it("keeps out an overlay with the same addresses but other keys", async () => {
    const intruder = await createOverlay({
      jobNetns: ns("jx"),
      hostNetns: ns("hB"),
      rank: 1,
      listenPorts: ports,
    });
    overlays.push(intruder);
    assert.notEqual(intruder.listenPort, rank1.listenPort, "two overlays on one host, two ports");
    await intruder.setPeers([peerOf(0, rank0, "172.31.77.1")]);
    await withEchoServer("j0", "10.77.0.1", async () => {
      assert.equal(await echoes("jx", "10.77.0.1", 2500), false);
      assert.equal(await echoes("j1", "10.77.0.1"), true, "the real rank 1 still gets through");
    });
    assert.match(sh(["wg", "show", intruder.deviceName, "latest-handshakes"]), /\t0\n/);
    await intruder.destroy();
  });

  it("replaces a rank that moves (new key, new endpoint) and drops the old peer", async () => {
    const moved = await createOverlay({
      jobNetns: ns("j1b"),
      hostNetns: ns("hB"),
      rank: 1,
      listenPorts: ports,
    });
    overlays.push(moved);
    await rank1.destroy();
    assert.deepEqual(leftovers(rank1, "j1"), []);
    await moved.setPeers([peerOf(0, rank0, "172.31.77.1")]);
    await rank0.setPeers([peerOf(1, moved, "172.31.77.3")]);
    assert.deepEqual(wgPeers(rank0), [moved.publicKey]);
    assert.match(
      sh(["wg", "show", rank0.deviceName, "endpoints"]),
      new RegExp(`172\\.31\\.77\\.3:${moved.listenPort}`),
    );
    await withEchoServer("j1b", "10.77.0.2", async () => {
      assert.equal(await echoes("j0", "10.77.0.2"), true);
    });
    await moved.destroy();
    await moved.destroy();
    assert.deepEqual(leftovers(moved, "j1b"), []);
    await assert.rejects(moved.setPeers([]), OverlayError);
  });

  it("leaves nothing when the job namespace is deleted under it", async () => {
    const doomed = await createOverlay({
      jobNetns: ns("jgone"),
      hostNetns: ns("hA"),
      rank: 3,
      listenPorts: ports,
    });
    overlays.push(doomed);
    sh(["ip", "netns", "del", ns("jgone")]);
    await doomed.destroy();
    assert.deepEqual(leftovers(doomed, "jgone"), []);
  });

  it("gives overlays set up at once on one host distinct ports", async () => {
    const jobs = ["jp0", "jp1", "jp2"];
    const parallel = await Promise.all(
      jobs.map((job, i) =>
        createOverlay({ jobNetns: ns(job), hostNetns: ns("hA"), rank: 10 + i, listenPorts: ports }),
      ),
    );
    overlays.push(...parallel);
    assert.equal(new Set(parallel.map((o) => o.listenPort)).size, 3);
    await Promise.all(parallel.map((o) => o.destroy()));
    parallel.forEach((o, i) => assert.deepEqual(leftovers(o, jobs[i]!), []));
  });

  it("ends with a worker killed by SIGKILL: device, process and socket gone", async () => {
    const script = `import("./src/worker/network/wireguard-overlay.ts").then(async (m) => {
      const o = await m.createOverlay(JSON.parse(process.argv[1]));
      console.log(JSON.stringify(o.deviceName)); setInterval(() => {}, 1000); })`;
    const options = { jobNetns: ns("jkill"), hostNetns: ns("hA"), rank: 4, listenPorts: ports };
    const worker = spawn(
      process.execPath,
      ["--import", "tsx", "-e", script, JSON.stringify(options)],
      {
        stdio: ["ignore", "pipe", "inherit"],
      },
    );
    const deviceName = await new Promise<string>((resolve) =>
      worker.stdout.once("data", (d: Buffer) => resolve(JSON.parse(d.toString()) as string)),
    );
    const gone = { deviceName } as Overlay;
    assert.notDeepEqual(leftovers(gone, "jkill"), []);
    worker.kill("SIGKILL");
    const deadline = Date.now() + 5000;
    while (leftovers(gone, "jkill").length > 0 && Date.now() < deadline) await delay(20);
    assert.deepEqual(leftovers(gone, "jkill"), []);
  });

  it("fails cleanly when no port of the range is free, or the namespace is unknown", async () => {
    const running = childWireguardGos();
    const sockets = readdirSync("/var/run/wireguard");
    const taken = { from: rank0.listenPort, to: rank0.listenPort };
    await assert.rejects(
      createOverlay({ jobNetns: ns("j1"), hostNetns: ns("hA"), rank: 1, listenPorts: taken }),
      (error: unknown) => error instanceof OverlayError && /no free UDP port/.test(error.message),
    );
    await assert.rejects(
      createOverlay({ jobNetns: `${P}-nosuch`, hostNetns: ns("hA"), rank: 1, listenPorts: ports }),
      OverlayError,
    );
    // A namespace that already has a tandem0: refused, and that interface is not touched.
    sh([
      "ip",
      "-n",
      ns("jbusy"),
      "link",
      "add",
      "tandem0",
      "type",
      "veth",
      "peer",
      "name",
      `${P}t`,
    ]);
    await assert.rejects(
      createOverlay({ jobNetns: ns("jbusy"), hostNetns: ns("hA"), rank: 1, listenPorts: ports }),
      (error: unknown) => error instanceof OverlayError && error.details?.step === "move",
    );
    assert.match(inNs("jbusy", ["ip", "-o", "link", "show", "dev", "tandem0"]), /link\/ether/);
    assert.doesNotMatch(inNs("jbusy", ["ip", "-o", "link"]), /tdm[0-9a-f]{12}/);
    // A namespace made beside the device (a promise) whose making failed: nothing is left.
    await assert.rejects(
      createOverlay({
        jobNetns: Promise.reject(new Error("no namespace today")),
        hostNetns: ns("hA"),
        rank: 1,
        listenPorts: ports,
      }),
      /no namespace today/,
    );
    await assert.rejects(
      createOverlay({ jobNetns: ns("j1"), hostNetns: ns("hA"), rank: -1, listenPorts: ports }),
      (error: unknown) => error instanceof OverlayError && error.details?.step === "rank",
    );
    assert.deepEqual(childWireguardGos(), running);
    assert.deepEqual(
      readdirSync("/var/run/wireguard").filter((f) => !sockets.includes(f)),
      [],
    );
    assert.equal(inNs("j1", ["ip", "-o", "link"]).includes("tandem0"), false);
    await rank0.destroy();
    assert.deepEqual(leftovers(rank0, "j0"), []);
  });
});

describe("WireGuard overlay with a rank behind NAT", () => {
  // Host A is public (172.31.78.1); host B sits behind router R, which masquerades its
  // 192.168.78.0/24 to 172.31.78.254. A has no route to B: only the NAT mapping B opens leads back.
  before(() => {
    for (const name of ["nA", "nR", "nB", "k0", "k1"]) addNs(name);
    veth(["nA", `${P}na`, "172.31.78.1/24"], ["nR", `${P}ra`, "172.31.78.254/24"]);
    veth(["nR", `${P}rb`, "192.168.78.1/24"], ["nB", `${P}nb`, "192.168.78.2/24"]);
    inNs("nB", ["ip", "route", "add", "default", "via", "192.168.78.1"]);
    inNs("nR", ["sysctl", "-qw", "net.ipv4.ip_forward=1"]);
    inNs("nR", ["iptables", "-t", "nat", "-A", "POSTROUTING", "-o", `${P}ra`, "-j", "MASQUERADE"]);
  });
  after(removeAll);

  it("reaches the NATed rank through the path its keepalive opened at once", async () => {
    const ports = { from: 53820, to: 53829 };
    const open = await createOverlay({
      jobNetns: ns("k0"),
      hostNetns: ns("nA"),
      rank: 0,
      listenPorts: ports,
    });
    overlays.push(open);
    const natted = await createOverlay({
      jobNetns: ns("k1"),
      hostNetns: ns("nB"),
      rank: 1,
      listenPorts: ports,
    });
    overlays.push(natted);
    await open.setPeers([{ ...peerOf(1, natted, "192.0.2.1"), endpoint: null }]);
    await natted.setPeers([peerOf(0, open, "172.31.78.1")]);
    // Rank 0 starts the conversation: it can only answer through the mapping rank 1 opened.
    await withEchoServer("k1", "10.77.0.2", async () => {
      assert.equal(await echoes("k0", "10.77.0.2"), true);
    });
    assert.match(sh(["wg", "show", open.deviceName, "endpoints"]), /\t172\.31\.78\.254:\d+\n/);
  });
});

/** The live (not zombie) wireguard-go processes this test process started. */
function childWireguardGos(): string[] {
  return readdirSync("/proc")
    .filter((d) => /^\d+$/.test(d))
    .filter((pid) => {
      try {
        const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
        const [, comm = "", state = "", ppid = ""] = /^\d+ \((.*)\) (\S) (\d+)/.exec(stat) ?? [];
        return comm === "wireguard-go" && state !== "Z" && Number(ppid) === process.pid;
      } catch {
        return false;
      }
    });
}
