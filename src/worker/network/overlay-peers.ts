/**
 * The check a worker makes on a cluster's peer list (`job-peers`) before it configures a single
 * peer: the coordinator is trusted to place ranks, not to hand a rank a list that would route its
 * overlay traffic somewhere odd. A list is the whole truth for one rank, so it must be consistent
 * on its own: the rank itself is not in it (by rank or by key), every peer sits at its rank's
 * overlay address, ranks and keys are unique, and each endpoint is a routable unicast address
 * outside the overlay (never loopback, unspecified, multicast, broadcast or 10.77.0.0/16: those
 * would send the encrypted traffic to the host itself or back into the overlay).
 */
import { z } from "zod";
import { ErrorCode, TandemError } from "../../core/errors.ts";
import { OverlayPeer, overlayAddressOf } from "../../protocol/cluster-network.ts";

/** What is wrong with a peer list, one stable word per defect. */
export const PeerListDefect = {
  /** Not a list of `OverlayPeer` (the protocol schema). */
  MALFORMED: "MALFORMED",
  /** The recipient's own rank is in the list. */
  SELF_RANK: "SELF_RANK",
  /** The recipient's own public key is in the list. */
  SELF_KEY: "SELF_KEY",
  /** A peer's overlay address is not `overlayAddressOf(peer.rank)`. */
  WRONG_ADDRESS: "WRONG_ADDRESS",
  DUPLICATE_RANK: "DUPLICATE_RANK",
  DUPLICATE_KEY: "DUPLICATE_KEY",
  /** An endpoint that is loopback, unspecified, multicast, broadcast or inside the overlay. */
  BAD_ENDPOINT: "BAD_ENDPOINT",
} as const;
export type PeerListDefect = (typeof PeerListDefect)[keyof typeof PeerListDefect];

/** The outcome of `checkPeerList`: the parsed list, or the first defect found. */
export type PeerListCheck =
  | { ok: true; peers: OverlayPeer[] }
  | { ok: false; defect: PeerListDefect; message: string; rank?: number };

/** A peer list refused: nothing of it was applied. `details.defect` names what is wrong. */
export class PeerListError extends TandemError {
  readonly defect: PeerListDefect;
  constructor(check: Extract<PeerListCheck, { ok: false }>) {
    super(ErrorCode.VALIDATION_FAILED, `peer list refused: ${check.message}`, {
      details: { defect: check.defect, ...(check.rank === undefined ? {} : { rank: check.rank }) },
    });
    this.name = "PeerListError";
    this.defect = check.defect;
  }
}

const PeerList = z.array(OverlayPeer).max(4096);

/**
 * Why an endpoint address is unusable, or null when it is a unicast address. Loopback is usable: a
 * peer on this same machine (`tandem dev`, workers beside their coordinator) is reached there.
 */
export function endpointProblem(address: string): string | null {
  const [a = -1, b = -1] = address.split(".").map(Number);
  if (a === 0) return "unspecified (0.0.0.0/8)";
  if (a >= 224 && a <= 239) return "multicast (224.0.0.0/4)";
  if (address === "255.255.255.255") return "broadcast";
  if (a >= 240) return "reserved (240.0.0.0/4)";
  if (a === 10 && b === 77) return "inside the overlay (10.77.0.0/16)";
  return null;
}

/**
 * Checks `list` (unknown: it came off the wire) as the complete peer list of rank `self.rank`,
 * whose own WireGuard key is `self.publicKey`. Pure.
 */
export function checkPeerList(
  list: unknown,
  self: { rank: number; publicKey: string },
): PeerListCheck {
  const parsed = PeerList.safeParse(list);
  if (!parsed.success)
    return {
      ok: false,
      defect: PeerListDefect.MALFORMED,
      message: parsed.error.issues.map((i) => `${i.path.join(".")}: ${i.message}`).join("; "),
    };
  const ranks = new Set<number>();
  const keys = new Set<string>();
  for (const peer of parsed.data) {
    const fail = (defect: PeerListDefect, message: string): PeerListCheck => ({
      ok: false,
      defect,
      message: `rank ${peer.rank}: ${message}`,
      rank: peer.rank,
    });
    if (peer.rank === self.rank) return fail(PeerListDefect.SELF_RANK, "is this rank itself");
    if (peer.publicKey === self.publicKey)
      return fail(PeerListDefect.SELF_KEY, "carries this rank's own public key");
    const expected = overlayAddressOf(peer.rank);
    if (peer.overlayAddress !== expected)
      return fail(
        PeerListDefect.WRONG_ADDRESS,
        `overlay address ${peer.overlayAddress}, expected ${expected}`,
      );
    if (ranks.has(peer.rank)) return fail(PeerListDefect.DUPLICATE_RANK, "listed twice");
    if (keys.has(peer.publicKey))
      return fail(PeerListDefect.DUPLICATE_KEY, "shares its public key with another peer");
    if (peer.endpoint !== null) {
      const problem = endpointProblem(peer.endpoint.address);
      if (problem !== null)
        return fail(PeerListDefect.BAD_ENDPOINT, `endpoint ${peer.endpoint.address} is ${problem}`);
    }
    ranks.add(peer.rank);
    keys.add(peer.publicKey);
  }
  return { ok: true, peers: parsed.data };
}

/**
 * The configuration `wg syncconf` applies for a peer list: the interface's own key and port (a
 * file without them would clear both) and one section per peer, routed to its overlay /32, with a
 * 25 s keepalive so a node behind NAT keeps its path open and handshakes at once.
 */
export function wireguardConfig(
  device: { privateKey: string; listenPort: number },
  peers: readonly OverlayPeer[],
): string {
  const lines = [
    "[Interface]",
    `PrivateKey = ${device.privateKey}`,
    `ListenPort = ${device.listenPort}`,
  ];
  for (const peer of peers) {
    lines.push(
      "",
      "[Peer]",
      `PublicKey = ${peer.publicKey}`,
      `AllowedIPs = ${peer.overlayAddress}/32`,
    );
    if (peer.endpoint !== null)
      lines.push(`Endpoint = ${peer.endpoint.address}:${peer.endpoint.port}`);
    lines.push(`PersistentKeepalive = ${PERSISTENT_KEEPALIVE_S}`);
  }
  return `${lines.join("\n")}\n`;
}

/** Seconds between keepalives to each peer (WireGuard's advice for paths through NAT). */
export const PERSISTENT_KEEPALIVE_S = 25;
