import assert from "node:assert/strict";
import { describe, it } from "node:test";
import type { JobPeersMessage, OverlayPeer } from "../../protocol/cluster-network.ts";
import { overlayAddressOf } from "../../protocol/cluster-network.ts";
import type { JobStartMessage, WorkerMessage } from "../../protocol/worker-messages.ts";
import type { Overlay } from "../network/wireguard-overlay.ts";
import { RankNetwork, rankNetworkMode } from "./rank-network.ts";

describe("rankNetworkMode", () => {
  const all = { isolation: true, overlay: true };
  it("isolates whenever it can, with the overlay when the cluster has one", () => {
    assert.deepEqual(rankNetworkMode({ internet: true, overlay: false }, all), {
      ok: true,
      mode: "isolated",
    });
    assert.deepEqual(rankNetworkMode({ internet: false, overlay: true }, all), {
      ok: true,
      mode: "overlay",
    });
  });

  it("runs on the host's network only where the rank may use the internet", () => {
    const none = { isolation: false, overlay: false };
    assert.deepEqual(rankNetworkMode({ internet: true, overlay: true }, none), {
      ok: true,
      mode: "shared",
    });
    const noOverlay = { isolation: true, overlay: false };
    assert.deepEqual(rankNetworkMode({ internet: true, overlay: true }, noOverlay), {
      ok: true,
      mode: "shared",
    });
    const refused = rankNetworkMode({ internet: false, overlay: true }, noOverlay);
    assert.equal(refused.ok, false);
    assert.match(!refused.ok ? refused.problem : "", /a cluster overlay \(WireGuard\)/);
    assert.equal(rankNetworkMode({ internet: false, overlay: false }, none).ok, false);
  });

  it("keeps the host's network for a job-start that says nothing (an older coordinator)", () => {
    assert.deepEqual(rankNetworkMode(undefined, all), { ok: true, mode: "shared" });
  });
});

/** Ports over fakes (the namespace and WireGuard are tested in src/worker/network). */
function fakePorts() {
  const applied: number[][] = [];
  const handshakes: string[] = [];
  let release: (() => void) | undefined;
  const overlay: Overlay = {
    publicKey: `${"K".repeat(42)}A=`,
    listenPort: 51_820,
    deviceName: "tdmtest",
    async setPeers(peers) {
      applied.push((peers as OverlayPeer[]).map((p) => p.rank));
      // The first application is slow, as `wg` on a loaded machine.
      if (applied.length === 1) await new Promise<void>((resolve) => (release = resolve));
    },
    handshaken: (publicKey) => Promise.resolve(handshakes.push(publicKey) > 0),
    destroy: () => Promise.resolve(),
  };
  const ports = {
    jobNetworks: {
      create: () =>
        Promise.resolve({
          name: "tdm-test",
          path: "/run/netns/tdm-test",
          link: undefined,
          destroy: () => Promise.resolve(),
        }),
    },
    overlays: { create: () => Promise.resolve(overlay) },
    localAddress: () => "192.0.2.10",
    headPeerWaitMs: 5_000,
  };
  return { ports, applied, handshakes, release: () => release?.() };
}

const start: JobStartMessage = {
  type: "job-start",
  clusterId: "clu_01jgfjjz00408vtwws79we9w34",
  rank: 1,
  attempt: 0,
  worldSize: 4,
  kind: "torch",
  command: ["true"],
  env: {},
  image: null,
  head: { address: "10.77.0.1", port: 29_500 },
  network: { internet: false, overlay: true },
};

const peer = (rank: number): OverlayPeer => ({
  rank,
  publicKey: `${"ABCD"[rank]!.repeat(42)}A=`,
  overlayAddress: overlayAddressOf(rank),
  endpoint: { address: "192.0.2.1", port: 51_820 + rank },
});
const peers = (...ranks: number[]): JobPeersMessage => ({
  type: "job-peers",
  clusterId: start.clusterId,
  rank: 1,
  attempt: 0,
  peers: ranks.map(peer),
});

describe("RankNetwork", () => {
  it("reports its key, waits for its head and a handshake with it, and applies only the newest of the lists that queue up", async () => {
    const { ports, applied, handshakes, release } = fakePorts();
    const sent: WorkerMessage[] = [];
    const network = RankNetwork.plan(
      start,
      ports,
      (m) => void sent.push(m),
      () => undefined,
    );
    let opened = false;
    const opening = network.open().then(() => (opened = true));
    await new Promise((r) => setImmediate(r));
    assert.deepEqual(sent[0], {
      type: "job-network",
      clusterId: start.clusterId,
      rank: 1,
      attempt: 0,
      publicKey: `${"K".repeat(42)}A=`,
      listenPort: 51_820,
      localAddress: "192.0.2.10",
    });
    const first = network.setPeers(peers(2));
    void network.setPeers(peers(2, 3));
    void network.setPeers({ ...peers(0, 2), attempt: 7 }); // another run's: ignored
    const last = network.setPeers(peers(0, 2, 3));
    assert.equal(opened, false, "no list with the head applied yet");
    release();
    await Promise.all([first, last, opening]);
    assert.deepEqual(applied, [[2], [0, 2, 3]], "the list queued behind the newest is skipped");
    assert.equal(opened, true);
    assert.deepEqual(handshakes, [peer(0).publicKey], "it waited for a handshake with its head");
    await network.close();
  });

  it("a batch rank starts without its head: the head may have finished before it (re)started", async () => {
    const { ports, handshakes } = fakePorts();
    const network = RankNetwork.plan(
      { ...start, kind: "batch", attempt: 1 },
      { ...ports, headPeerWaitMs: 600_000 },
      () => undefined,
      () => undefined,
    );
    // No peer list ever comes: a rank that waited for its head would not open within a second.
    const opened = await Promise.race([
      network.open().then(() => true),
      new Promise<false>((resolve) => setTimeout(() => resolve(false), 1000).unref()),
    ]);
    assert.equal(opened, true, "the batch rank waited for its head");
    assert.deepEqual(handshakes, []);
    await network.close();
  });
});
