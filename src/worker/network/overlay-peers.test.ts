import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { overlayAddressOf, type OverlayPeer } from "../../protocol/cluster-network.ts";
import { PeerListDefect, PeerListError, checkPeerList, wireguardConfig } from "./overlay-peers.ts";

function key(n: number): string {
  const bytes = Buffer.alloc(32, 7);
  bytes.writeUInt16BE(n);
  return bytes.toString("base64");
}
const peer = (rank: number, over: Partial<OverlayPeer> = {}): OverlayPeer => ({
  rank,
  publicKey: key(rank),
  overlayAddress: overlayAddressOf(rank),
  endpoint: { address: `192.0.2.${(rank % 250) + 1}`, port: 51820 },
  ...over,
});
const self = { rank: 0, publicKey: key(0) };

function defectOf(list: unknown): string | null {
  const check = checkPeerList(list, self);
  return check.ok ? null : check.defect;
}

describe("checkPeerList", () => {
  it("accepts a consistent list, NAT peers (no endpoint) and the empty list", () => {
    assert.equal(defectOf([peer(1), peer(2, { endpoint: null }), peer(300)]), null);
    assert.equal(defectOf([]), null);
  });

  it("names each defect", () => {
    assert.equal(defectOf([peer(0, { publicKey: key(5) })]), PeerListDefect.SELF_RANK);
    assert.equal(defectOf([peer(1, { publicKey: key(0) })]), PeerListDefect.SELF_KEY);
    assert.equal(
      defectOf([peer(1, { overlayAddress: "10.77.0.3" })]),
      PeerListDefect.WRONG_ADDRESS,
    );
    assert.equal(
      defectOf([peer(1), peer(1, { publicKey: key(7) })]),
      PeerListDefect.DUPLICATE_RANK,
    );
    assert.equal(defectOf([peer(1), peer(2, { publicKey: key(1) })]), PeerListDefect.DUPLICATE_KEY);
    for (const address of ["0.0.0.0", "224.0.0.5", "255.255.255.255", "10.77.0.9"])
      assert.equal(
        defectOf([peer(1, { endpoint: { address, port: 51820 } })]),
        PeerListDefect.BAD_ENDPOINT,
        address,
      );
    const onThisMachine = peer(1, { endpoint: { address: "127.0.0.1", port: 51820 } });
    assert.equal(defectOf([onThisMachine]), null, "a peer on this same machine");
    assert.equal(defectOf([{ ...peer(1), extra: 1 }]), PeerListDefect.MALFORMED);
    assert.equal(defectOf([peer(1, { publicKey: "not-a-key" })]), PeerListDefect.MALFORMED);
    assert.equal(defectOf("peers"), PeerListDefect.MALFORMED);
  });

  it("gives a typed error naming the defect and the rank", () => {
    const check = checkPeerList([peer(1), peer(2, { overlayAddress: "10.77.0.1" })], self);
    assert.equal(check.ok, false);
    if (check.ok) return;
    const error = new PeerListError(check);
    assert.equal(error.code, "VALIDATION_FAILED");
    assert.deepEqual(error.details, { defect: "WRONG_ADDRESS", rank: 2 });
    assert.match(error.message, /rank 2: overlay address 10\.77\.0\.1, expected 10\.77\.0\.3/);
  });
});

describe("wireguardConfig", () => {
  it("keeps the interface's key and port and routes each peer to its /32 with a keepalive", () => {
    const config = wireguardConfig({ privateKey: key(0), listenPort: 51821 }, [
      peer(1),
      peer(2, { endpoint: null }),
    ]);
    assert.equal(
      config,
      [
        "[Interface]",
        `PrivateKey = ${key(0)}`,
        "ListenPort = 51821",
        "",
        "[Peer]",
        `PublicKey = ${key(1)}`,
        "AllowedIPs = 10.77.0.2/32",
        "Endpoint = 192.0.2.2:51820",
        "PersistentKeepalive = 25",
        "",
        "[Peer]",
        `PublicKey = ${key(2)}`,
        "AllowedIPs = 10.77.0.3/32",
        "PersistentKeepalive = 25",
        "",
      ].join("\n"),
    );
  });
});
