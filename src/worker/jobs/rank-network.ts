/**
 * One rank's network, from its `job-start` to its end (DESIGN.md §3 "job networks"): which network
 * it gets, its namespace (src/worker/network/job-netns.ts), its half of the cluster's WireGuard
 * overlay (src/worker/network/wireguard-overlay.ts), the key exchange with the coordinator
 * (`job-network` out, `job-peers` in: src/protocol/cluster-network.ts), and the tear-down.
 *
 * A worker that can isolate always does: a rank asks for its namespace in every `job-start`, and
 * runs on the host's network only where the coordinator placed it knowing this worker cannot
 * (its `jobNetworks: optional` policy) and the rank may use the internet. A rank refused the
 * internet never runs on the host's network.
 *
 * A rank other than the head waits (briefly) before its job starts until its peer list holds the
 * head and a WireGuard handshake with the head has completed: its first connection goes to the
 * head, and a packet sent before both sides know each other's key is dropped and retried by TCP
 * only a second later (measured: torch's start grew by ~0.9 s).
 */
import type { JobNetworkSpec, JobPeersMessage } from "../../protocol/cluster-network.ts";
import { OVERLAY_INTERFACE, overlayAddressOf } from "../../protocol/cluster-network.ts";
import type { JobStartMessage, WorkerMessage } from "../../protocol/worker-messages.ts";
import type { JobNetns } from "../network/job-netns.ts";
import type { JobNetworks } from "../network/job-networks.ts";
import type { Overlay } from "../network/wireguard-overlay.ts";
import { ISOLATED_HOSTNAME } from "../runtime/bwrap-args.ts";
import { JobRuntimeError, type JobNamespaceNetwork } from "../runtime/job-runtime.ts";

/** What the worker can build, as the supervisor is handed it. */
export interface RankNetworkPorts {
  /** Rank namespaces; undefined where this worker cannot isolate. */
  jobNetworks?: JobNetworks | undefined;
  /** Overlay halves (`createOverlay` bound to this worker's ports); undefined: none here. */
  overlays?:
    { create(jobNetnsPath: PromiseLike<string>, rank: number): Promise<Overlay> } | undefined;
  /** The address this worker's host has on its link to the coordinator (or --public-address). */
  localAddress(): string | undefined;
  /** How long a rank waits for a peer list holding its head, ms (default 10 s). */
  headPeerWaitMs?: number | undefined;
}

/** The network a rank gets here: the host's, its own namespace, or that plus the overlay. */
export type RankNetworkMode = "shared" | "isolated" | "overlay";

/**
 * What this worker gives a rank asking for `spec`, or why it refuses. Pure.
 * @param can what the worker can build (its ports)
 */
export function rankNetworkMode(
  spec: JobNetworkSpec | undefined,
  can: { isolation: boolean; overlay: boolean },
): { ok: true; mode: RankNetworkMode } | { ok: false; problem: string } {
  if (spec === undefined) return { ok: true, mode: "shared" };
  const missing = !can.isolation
    ? "its own network namespace"
    : spec.overlay && !can.overlay
      ? "a cluster overlay (WireGuard)"
      : undefined;
  if (missing === undefined) return { ok: true, mode: spec.overlay ? "overlay" : "isolated" };
  if (spec.internet) return { ok: true, mode: "shared" };
  return {
    ok: false,
    problem: `this worker cannot give a rank without internet ${missing}: it would run on the host's network`,
  };
}

const DEFAULT_HEAD_PEER_WAIT_MS = 10_000;
/**
 * Kinds whose ranks meet at the head (torch's store, Dask's scheduler, Ray's GCS). A batch or
 * container rank runs on its own, and its head may have finished long before it (re)starts.
 */
const MEETS_AT_HEAD: ReadonlySet<JobStartMessage["kind"]> = new Set(["torch", "dask", "ray"]);
const HANDSHAKE_SLICE_MS = 500;

export class RankNetwork {
  private netns: JobNetns | undefined;
  private overlay: Overlay | undefined;
  /** The newest peer list not applied yet, and the application under way (one at a time). */
  private newestPeers: JobPeersMessage | undefined;
  private applying: Promise<void> | undefined;
  /** The head's key, once a list holding it has been applied. */
  private headKey: string | undefined;
  private headWaiters: Array<() => void> = [];
  private closed = false;
  private halted = false;
  /** Ends a handshake wait under way when the rank is halted. */
  private onHalt: (() => void) | undefined;

  private constructor(
    private readonly job: JobStartMessage,
    readonly mode: RankNetworkMode,
    private readonly ports: RankNetworkPorts,
    private readonly send: (message: WorkerMessage) => void,
    private readonly log: (message: string, fields?: Record<string, unknown>) => void,
  ) {}

  /** Decides the rank's network; throws (a start failure of this node) when it must refuse. */
  static plan(
    job: JobStartMessage,
    ports: RankNetworkPorts,
    send: (message: WorkerMessage) => void,
    log: (message: string, fields?: Record<string, unknown>) => void,
  ): RankNetwork {
    const decided = rankNetworkMode(job.network, {
      isolation: ports.jobNetworks !== undefined,
      overlay: ports.overlays !== undefined,
    });
    if (!decided.ok) throw new JobRuntimeError("RUNTIME_UNAVAILABLE", decided.problem);
    if (job.network !== undefined && decided.mode === "shared")
      log("rank runs on the host's network: this worker cannot build what it asks", {
        clusterId: job.clusterId,
        network: job.network,
      });
    return new RankNetwork(job, decided.mode, ports, send, log);
  }

  /** The head's rendezvous address is on the overlay (its peers reach it at 10.77.0.1). */
  get onOverlay(): boolean {
    return this.mode === "overlay";
  }

  /**
   * Builds the namespace (and the overlay half, reported to the coordinator), then, for a rank
   * other than the head of a kind that meets at the head, waits for a peer list that holds it.
   */
  async open(): Promise<void> {
    if (this.mode === "shared") return;
    const netns = this.ports.jobNetworks!.create(this.job.network!);
    if (this.mode !== "overlay") {
      this.netns = await netns;
      return;
    }
    // The overlay device is made beside the namespace and moved in once that exists.
    const overlay = this.ports.overlays!.create(
      netns.then((n) => n.path),
      this.job.rank,
    );
    const [made, joined] = await Promise.allSettled([netns, overlay]);
    if (made.status === "fulfilled") this.netns = made.value;
    if (joined.status === "fulfilled") this.overlay = joined.value;
    if (made.status === "rejected") throw made.reason;
    if (joined.status === "rejected") throw joined.reason;
    const published = joined.value;
    const localAddress = this.ports.localAddress();
    if (localAddress === undefined)
      throw new JobRuntimeError("JOB_START_FAILED", "not connected to the coordinator");
    this.send({
      type: "job-network",
      clusterId: this.job.clusterId,
      rank: this.job.rank,
      attempt: this.job.attempt,
      publicKey: published.publicKey,
      listenPort: published.listenPort,
      localAddress,
    });
    if (this.job.rank !== 0 && MEETS_AT_HEAD.has(this.job.kind)) await this.headInPeers();
  }

  /** What the runtime runs the job in; "shared" for the host's network. */
  runtimeNetwork(): JobNamespaceNetwork | "shared" {
    if (this.netns === undefined) return "shared";
    if (this.mode !== "overlay") return { namespace: this.netns.path };
    // gloo advertises the address its hostname resolves to: the rank's overlay address.
    return {
      namespace: this.netns.path,
      hosts: { [ISOLATED_HOSTNAME]: overlayAddressOf(this.job.rank) },
    };
  }

  /** Environment that points the engines at the overlay's interface. */
  engineEnv(): Record<string, string> {
    if (this.mode !== "overlay") return {};
    return {
      GLOO_SOCKET_IFNAME: OVERLAY_INTERFACE,
      NCCL_SOCKET_IFNAME: OVERLAY_INTERFACE,
      TP_SOCKET_IFNAME: OVERLAY_INTERFACE,
    };
  }

  /**
   * A `job-peers` for this rank; one for another run is ignored. Each list is complete, so while
   * one is being applied only the newest of those that arrive meanwhile is applied next: a
   * cluster of n ranks starting together sends each rank up to n lists, and `wg` runs once per
   * applied list.
   */
  setPeers(message: JobPeersMessage): Promise<void> {
    if (message.rank !== this.job.rank || message.attempt !== this.job.attempt) {
      this.log("peer list for another run ignored", {
        clusterId: message.clusterId,
        rank: message.rank,
        attempt: message.attempt,
      });
      return Promise.resolve();
    }
    this.newestPeers = message;
    this.applying ??= this.applyNewest().finally(() => (this.applying = undefined));
    return this.applying;
  }

  private async applyNewest(): Promise<void> {
    for (let message = this.newestPeers; message !== undefined; message = this.newestPeers) {
      this.newestPeers = undefined;
      if (this.overlay === undefined || this.closed) return;
      try {
        await this.overlay.setPeers(message.peers);
      } catch (error) {
        // The coordinator's defect (PeerListError) or a failed `wg`: the last list stays.
        this.log("peer list refused", { clusterId: message.clusterId, error: String(error) });
        continue;
      }
      const head = message.peers.find((p) => p.rank === 0);
      if (head !== undefined) {
        this.headKey = head.publicKey;
        for (const wake of this.headWaiters.splice(0)) wake();
      }
    }
  }

  /**
   * The rank is being stopped: a wait for the head ends now (and none starts), so the run ends
   * and its network goes at once rather than after `headPeerWaitMs`.
   */
  halt(): void {
    this.halted = true;
    for (const wake of this.headWaiters.splice(0)) wake();
    this.onHalt?.();
  }

  /**
   * Waits until this rank's list holds the head and a handshake with it has completed, so the
   * job's first packet to the head is not dropped (TCP would send it again a second later).
   * Gives up after `headPeerWaitMs` and starts all the same.
   */
  private async headInPeers(): Promise<void> {
    if (this.halted) return;
    const waitMs = this.ports.headPeerWaitMs ?? DEFAULT_HEAD_PEER_WAIT_MS;
    const deadline = Date.now() + waitMs;
    let timer: NodeJS.Timeout | undefined;
    const known =
      this.headKey !== undefined ||
      (await Promise.race([
        new Promise<boolean>((resolve) => this.headWaiters.push(() => resolve(true))),
        new Promise<boolean>((resolve) => (timer = setTimeout(() => resolve(false), waitMs))),
      ]));
    clearTimeout(timer);
    if (this.halted) return;
    const halted = new Promise<boolean>((resolve) => (this.onHalt = () => resolve(false)));
    let handshaken = false;
    // In slices: a newer list may name a new head key (the head restarted), then that one counts.
    while (known && !handshaken && !this.halted && this.overlay !== undefined) {
      const left = deadline - Date.now();
      if (left <= 0 || this.headKey === undefined) break;
      handshaken = await Promise.race([
        this.overlay.handshaken(this.headKey, Math.min(HANDSHAKE_SLICE_MS, left)),
        halted,
      ]);
    }
    this.onHalt = undefined;
    if (this.halted) return;
    if (!handshaken)
      this.log("no handshake with the head yet: starting anyway", {
        clusterId: this.job.clusterId,
        rank: this.job.rank,
        waitedMs: waitMs,
        headInPeers: known,
      });
  }

  /** Removes the overlay half and the namespace; idempotent, never throws. */
  async close(): Promise<void> {
    this.closed = true;
    for (const wake of this.headWaiters.splice(0)) wake();
    await this.applying;
    const overlay = this.overlay;
    const netns = this.netns;
    this.overlay = undefined;
    this.netns = undefined;
    await overlay
      ?.destroy()
      .catch((error: unknown) => this.log("overlay removal failed", { error: String(error) }));
    await netns
      ?.destroy()
      .catch((error: unknown) =>
        this.log("job network removal failed", { name: netns.name, error: String(error) }),
      );
  }
}
