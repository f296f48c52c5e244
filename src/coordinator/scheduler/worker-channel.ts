import type { CoordinatorMessage } from "../../protocol/worker-messages.ts";

/** How the scheduler reaches workers: the gateway implements it. */
export interface WorkerChannel {
  /** Sends to the worker serving `nodeId`; false when it is not connected here. */
  send(nodeId: string, message: CoordinatorMessage): boolean;
  /** The address the worker connected from, which its peers use to reach it. */
  addressOf(nodeId: string): string | undefined;
  /**
   * Whether the worker connected here is behind NAT (what it said its address is differs from
   * the address seen; cluster-network.ts `behindNat`); false when unknown or not connected here.
   */
  behindNat(nodeId: string): boolean;
  /**
   * Up to when the worker has served as far as its heartbeats tell (now while it beats on time;
   * its last beat when silent; its last-seen time when it has not come back after a coordinator
   * restart): settlement pays a lease no further. Undefined when it is not watched (gone: its
   * loss settles the lease up to its last beat).
   */
  servedUntilMs(nodeId: string): number | undefined;
  /**
   * True for a node that was online when this coordinator started and has not been heard from
   * since: it is neither placed nor promoted until it is (it may be gone).
   */
  awaitingContact(nodeId: string): boolean;
}
