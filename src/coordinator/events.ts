import { EventEmitter } from "node:events";
import type { ClusterStatus } from "../core/cluster-status.ts";
import type { NodeStatus } from "../core/node-status.ts";

/** Typed events the coordinator's subsystems publish after their transaction commits. */
export interface CoordinatorEventMap {
  "node:status": {
    nodeId: string;
    from: NodeStatus;
    to: NodeStatus;
    atMs: number;
    reason: string;
    /** For a node declared dead: its last heartbeat (it served no later than this). */
    lastSeenMs?: number;
    /**
     * Declared dead because it never came back after a coordinator restart: whether it failed
     * or only the coordinator was away cannot be told, so nobody is blamed.
     */
    unheardSinceRestart?: true;
  };
  /** A device registered for the first time: its node exists, `offline`. */
  "node:registered": { nodeId: string; atMs: number };
  /** A node's hardware, location or price changed (its status did not). */
  "node:metadata": { nodeId: string; atMs: number };
  /** A node's reputation score changed (new evidence, or the periodic refresh). */
  "node:reputation": { nodeId: string; reputation: number; atMs: number };
  /** A proof of the node's hardware ended and was recorded (passed or not). */
  "node:proven": { nodeId: string; passed: boolean; atMs: number };
  /** A stake on the node changed (economics/stakes.ts): added, unbonding, withdrawn, commission. */
  "node:stake": { nodeId: string; action: string; atMs: number };
  /** A reward block committed (economics/reward-blocks.ts): the hour and the TDM it minted. */
  "token:block": { hour: number; minted: string; atMs: number };
  "device:revoked": { deviceId: string; nodeId: string; atMs: number };
  /** A cluster's status changed (scheduler/cluster-lifecycle.ts); at an end, the nodes it released. */
  "cluster:status": {
    clusterId: string;
    from: ClusterStatus;
    to: ClusterStatus;
    atMs: number;
    reason: string;
    /** The nodes whose leases the change let go (every active one at an end). */
    releasedNodeIds: readonly string[];
  };
}

export class CoordinatorEvents {
  private readonly emitter = new EventEmitter();

  emit<K extends keyof CoordinatorEventMap>(name: K, payload: CoordinatorEventMap[K]): void {
    this.emitter.emit(name, payload);
  }

  on<K extends keyof CoordinatorEventMap>(
    name: K,
    listener: (payload: CoordinatorEventMap[K]) => void,
  ): () => void {
    this.emitter.on(name, listener);
    return () => this.emitter.off(name, listener);
  }
}
