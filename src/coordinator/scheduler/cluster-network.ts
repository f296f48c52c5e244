/**
 * Job networks, the coordinator's side (src/protocol/cluster-network.ts): what placement must
 * ask of nodes, what each rank's `job-start` says about its network, and the overlay's key
 * exchange: each rank's worker reports its WireGuard public key and port (`job-network`), and
 * every rank of the cluster gets the complete list of its peers (`job-peers`), again whenever a
 * rank's key changes (a failover, a restart of the rank). Rows live in `rank_networks`, so the
 * lists survive a coordinator restart; they are public keys and addresses only.
 *
 * A node's endpoint is the address this coordinator sees its worker connect from, when the worker
 * sees itself at that same address; when they differ the node is behind NAT and gets no endpoint:
 * its peers cannot open a path to it, so it opens them (persistent keepalive) and WireGuard learns
 * where it is from its first packet. Two nodes behind NAT cannot reach each other (no relay), so
 * placement takes at most one of them per overlay (`behindNat`, from what the worker said in its
 * `auth`; core/placement.ts `maxBehindNat`); the cluster's events say which ranks joined from
 * behind NAT (`overlay-joined`).
 */
import type { FastifyBaseLogger } from "fastify";
import type { Kysely } from "kysely";
import {
  overlayAddressOf,
  type JobNetworkMessage,
  type JobNetworkSpec,
  type OverlayPeer,
} from "../../protocol/cluster-network.ts";
import type { Database } from "../store/schema.ts";
import { appendClusterEvent } from "./cluster-store.ts";
import type { WorkerChannel } from "./worker-channel.ts";
import { runInTransaction } from "../store/transaction.ts";

/** What a request needs of each node's job network (core/placement.ts `network`). */
export function networkAsk(
  request: { nodes: number; internet?: boolean | undefined; autoscale?: unknown },
  policy: "required" | "optional",
): "isolated" | "overlay" | undefined {
  if (policy === "optional" && request.internet !== false) return undefined;
  return hasOverlay(request.nodes, request.autoscale !== undefined && request.autoscale !== null)
    ? "overlay"
    : "isolated";
}

/** The ranks of a cluster talk to each other (an autoscaled batch cluster's tasks do not). */
function hasOverlay(worldSize: number, autoscaled: boolean): boolean {
  return worldSize > 1 && !autoscaled;
}

/** The `network` of a rank's `job-start`. */
export function jobNetworkSpec(
  spec: { filters: Record<string, unknown> },
  worldSize: number,
  autoscaled: boolean,
): JobNetworkSpec {
  return { internet: spec.filters.internet !== false, overlay: hasOverlay(worldSize, autoscaled) };
}

/** The IPv4 text of a socket's remote address (`::ffff:1.2.3.4` → `1.2.3.4`); else undefined. */
function ipv4Of(address: string | undefined): string | undefined {
  if (address === undefined) return undefined;
  const plain = address.startsWith("::ffff:") ? address.slice(7) : address;
  return /^\d{1,3}(\.\d{1,3}){3}$/.test(plain) ? plain : undefined;
}

/**
 * Where a node's peers can open a path to it: the address this coordinator sees its worker at,
 * when the worker reports that same address as its own (the link's local address, or its
 * `--public-address`); undefined when they differ (NAT rewrote it) or either is unknown.
 */
export function reachableAddress(
  seen: string | undefined,
  reported: string | undefined,
): string | undefined {
  const address = ipv4Of(seen);
  return address !== undefined && address === reported ? address : undefined;
}

/**
 * Whether a worker that said `reported` in its `auth` and was seen at `seen` is behind NAT, for
 * placement (at most one such node per cluster overlay). A worker that said nothing (one from
 * before the field) is taken as it was before: not behind NAT.
 */
export function behindNat(seen: string | undefined, reported: string | undefined): boolean {
  return reported !== undefined && reachableAddress(seen, reported) === undefined;
}

export class OverlayExchange {
  constructor(
    private readonly deps: {
      db: Kysely<Database>;
      workers: WorkerChannel;
      logger: FastifyBaseLogger;
    },
  ) {}

  /**
   * A rank's worker made its overlay half: record it (a newer attempt replaces an older one) and
   * send every rank of the cluster its new peer list. The caller has checked that `nodeId` holds
   * this rank's active lease at this attempt.
   */
  async onJobNetwork(nodeId: string, message: JobNetworkMessage, nowMs: number): Promise<void> {
    const seen = reachableAddress(this.deps.workers.addressOf(nodeId), message.localAddress);
    const reachable = seen !== undefined;
    const row = {
      cluster_id: message.clusterId,
      rank: message.rank,
      attempt: message.attempt,
      node_id: nodeId,
      public_key: message.publicKey,
      endpoint_address: reachable ? seen : null,
      endpoint_port: message.listenPort,
      updated_at: nowMs,
    };
    const changed = await runInTransaction(this.deps.db, async (tx) => {
      const current = await tx
        .selectFrom("rank_networks")
        .select(["attempt", "public_key", "endpoint_address", "endpoint_port", "node_id"])
        .where("cluster_id", "=", message.clusterId)
        .where("rank", "=", message.rank)
        .executeTakeFirst();
      if (current !== undefined && current.attempt > message.attempt) return false;
      if (
        current !== undefined &&
        current.attempt === message.attempt &&
        current.node_id === nodeId &&
        current.public_key === row.public_key &&
        current.endpoint_address === row.endpoint_address &&
        current.endpoint_port === row.endpoint_port
      )
        return true; // a resend after a reconnect: the lists are the same, send them again
      await tx
        .deleteFrom("rank_networks")
        .where("cluster_id", "=", message.clusterId)
        .where("rank", "=", message.rank)
        .execute();
      await tx.insertInto("rank_networks").values(row).execute();
      await appendClusterEvent(tx, message.clusterId, nowMs, "overlay-joined", {
        rank: message.rank,
        attempt: message.attempt,
        nodeId,
        behindNat: !reachable,
      });
      return true;
    });
    if (changed) await this.sendPeerLists(message.clusterId);
  }

  /** Sends each rank with an overlay half the list of all the others. */
  async sendPeerLists(clusterId: string): Promise<void> {
    // Only halves of runs that still hold their rank: a rank restarted under a newer attempt (a
    // failover, torch's restart of every rank) is left out until its new run reports its key.
    const rows = await this.deps.db
      .selectFrom("rank_networks as n")
      .innerJoin("cluster_nodes as l", (join) =>
        join
          .onRef("l.cluster_id", "=", "n.cluster_id")
          .onRef("l.node_id", "=", "n.node_id")
          .onRef("l.rank", "=", "n.rank")
          .onRef("l.attempt", "=", "n.attempt"),
      )
      .selectAll("n")
      .where("n.cluster_id", "=", clusterId)
      .where("l.active", "=", 1)
      .orderBy("n.rank")
      .execute();
    const peers: Array<OverlayPeer & { nodeId: string; attempt: number }> = rows.map((r) => ({
      rank: r.rank,
      attempt: r.attempt,
      nodeId: r.node_id,
      publicKey: r.public_key,
      overlayAddress: overlayAddressOf(r.rank),
      endpoint:
        r.endpoint_address === null ? null : { address: r.endpoint_address, port: r.endpoint_port },
    }));
    for (const self of peers) {
      const others = peers
        .filter((p) => p.rank !== self.rank)
        .map(({ rank, publicKey, overlayAddress, endpoint }) => ({
          rank,
          publicKey,
          overlayAddress,
          endpoint,
        }));
      const sent = this.deps.workers.send(self.nodeId, {
        type: "job-peers",
        clusterId,
        rank: self.rank,
        attempt: self.attempt,
        peers: others,
      });
      if (!sent)
        this.deps.logger.debug({ clusterId, rank: self.rank }, "peer list not sent: worker away");
    }
  }

  /** The cluster ended: its overlay's public halves are of no more use. */
  async forget(db: Kysely<Database>, clusterId: string): Promise<void> {
    await db.deleteFrom("rank_networks").where("cluster_id", "=", clusterId).execute();
  }
}
