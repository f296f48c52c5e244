import type { CoordinatorMessage } from "../../protocol/worker-messages.ts";

/** How the scheduler reaches workers: the gateway implements it. */
export interface WorkerChannel {
  /** Sends to the worker serving `nodeId`; false when it is not connected here. */
  send(nodeId: string, message: CoordinatorMessage): boolean;
  /** The address the worker connected from, which its peers use to reach it. */
  addressOf(nodeId: string): string | undefined;
}
