/**
 * The cluster network (DESIGN.md §3 "job networks", rule 8.5): every rank runs in its own network
 * namespace; the ranks of one cluster share a private WireGuard overlay across hosts.
 *
 * Addressing: every cluster's overlay is the same 10.77.0.0/16, rank r at host r + 1. Clusters
 * never see each other's overlay (each lives in its own namespaces, behind its own keys), so the
 * addresses need no allocation and a rank's address is known before any node is placed: the head
 * is always 10.77.0.1.
 *
 * The exchange, over the authenticated worker channel:
 *   1. `job-start` with `network` set: the worker makes the rank's namespace and a WireGuard key
 *      pair for this lease, and answers `job-network` (public key, UDP port, the address it sees
 *      itself at).
 *   2. The coordinator answers every rank of the cluster with `job-peers`: each other rank's key,
 *      overlay address and endpoint (null for a node behind NAT: it reaches its peers, they answer
 *      through the path it opened). It sends `job-peers` again whenever a rank moves.
 * The private key never leaves the worker and dies with the lease.
 */
import { z } from "zod";
import { IdPrefix, idSchema } from "./ids.ts";

/** A WireGuard (X25519) public key as `wg` prints it: base64 of 32 bytes. */
export const WireguardKey = z
  .string()
  .regex(/^[A-Za-z0-9+/]{42}[AEIMQUYcgkosw048]=$/, "expected a WireGuard key (base64 of 32 bytes)");

/** The overlay's name inside each rank's namespace (engines are told it: GLOO_SOCKET_IFNAME…). */
export const OVERLAY_INTERFACE = "tandem0";
/** Every cluster's overlay network. */
export const OVERLAY_CIDR = "10.77.0.0/16";
export const OVERLAY_PREFIX_LENGTH = 16;
/** Ranks an overlay can address (host part 1 … 65,534). */
export const OVERLAY_MAX_RANKS = 65_534;

/** The overlay address of `rank` (rank 0, the head: 10.77.0.1). */
export function overlayAddressOf(rank: number): string {
  if (!Number.isSafeInteger(rank) || rank < 0 || rank >= OVERLAY_MAX_RANKS)
    throw new RangeError(`rank ${rank} has no overlay address`);
  const host = rank + 1;
  return `10.77.${host >> 8}.${host & 0xff}`;
}

const ClusterId = idSchema(IdPrefix.cluster);
const Rank = z.number().int().min(0).max(4096);
const Attempt = z.number().int().min(0).max(1_000_000);
const Port = z.number().int().min(1).max(65_535);
const Ipv4 = z
  .string()
  .regex(
    /^(?:(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)\.){3}(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)$/,
    "expected an IPv4 address",
  );

/**
 * What a rank's network is to be (in `job-start`; absent: the host's network, for a worker that
 * cannot isolate, in `tandem dev` only).
 */
export const JobNetworkSpec = z.strictObject({
  /** Outbound internet through the worker's NAT; false: nothing leaves but the overlay. */
  internet: z.boolean(),
  /** Whether the rank joins its cluster's overlay (every multi-node cluster). */
  overlay: z.boolean(),
});
export type JobNetworkSpec = z.infer<typeof JobNetworkSpec>;

/** worker → coordinator: this rank's half of the overlay. */
export const JobNetworkMessage = z.strictObject({
  type: z.literal("job-network"),
  clusterId: ClusterId,
  rank: Rank,
  attempt: Attempt,
  publicKey: WireguardKey,
  /** The UDP port WireGuard listens on, on the worker's host. */
  listenPort: Port,
  /**
   * The address the worker's host has on its side of the link to the coordinator (or its
   * `--public-address`). The coordinator compares it with the address it sees: a difference
   * means NAT, and the node gets no endpoint in its peers' lists.
   */
  localAddress: Ipv4,
});
export type JobNetworkMessage = z.infer<typeof JobNetworkMessage>;

/** One other rank of the cluster, as a worker configures it as a WireGuard peer. */
export const OverlayPeer = z.strictObject({
  rank: Rank,
  publicKey: WireguardKey,
  overlayAddress: Ipv4,
  /** Where its WireGuard listens; null behind NAT (it keeps the path open from its side). */
  endpoint: z.strictObject({ address: Ipv4, port: Port }).nullable(),
});
export type OverlayPeer = z.infer<typeof OverlayPeer>;

/** coordinator → worker: the complete peer list of one rank (replaces any earlier one). */
export const JobPeersMessage = z.strictObject({
  type: z.literal("job-peers"),
  clusterId: ClusterId,
  /** The recipient's rank and attempt: a list for another run of this rank is ignored. */
  rank: Rank,
  attempt: Attempt,
  peers: z.array(OverlayPeer).max(4096),
});
export type JobPeersMessage = z.infer<typeof JobPeersMessage>;

/**
 * What a worker can do for job networks, in its hardware report. A node that cannot isolate is
 * placed by nobody outside `tandem dev`; one without an overlay only for one-node clusters.
 */
export const NetworkCapability = z.strictObject({
  /** A network namespace per rank, with NAT and the isolation rules. */
  isolation: z.boolean(),
  /** How it builds cluster overlays; null: it cannot. */
  overlay: z.enum(["wireguard-kernel", "wireguard-go"]).nullable(),
  /** What it could not set up and why, for the operator and the placement funnel. */
  problems: z.array(z.string().max(300)).max(8),
});
export type NetworkCapability = z.infer<typeof NetworkCapability>;
