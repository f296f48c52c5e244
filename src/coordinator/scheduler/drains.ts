import { isFinal } from "../../core/cluster-status.ts";
import type { ClusterQueue } from "./cluster-queue.ts";
import type { Failover } from "./failover.ts";
import type { SchedulerResources } from "./resources.ts";

/**
 * Announced stops (a worker's `drain`): the node takes no new lease; its ranks move where a
 * standby or a fresh node can take them (no slash) and the rest finish in place; once it holds no
 * lease it is told `drained` and may stop. A drain lasts until the worker goes offline.
 */
export class Drains {
  constructor(
    private readonly resources: Pick<
      SchedulerResources,
      "db" | "inventory" | "workers" | "events" | "logger"
    >,
    private readonly queue: ClusterQueue,
    private readonly failover: Failover,
  ) {
    resources.events.on("node:status", ({ nodeId, to }) => {
      // Once offline, it comes back rentable.
      if (to === "offline" || to === "revoked") void this.clearDraining(nodeId);
    });
    resources.events.on("cluster:status", ({ to, releasedNodeIds }) => {
      if (!isFinal(to)) return;
      for (const nodeId of releasedNodeIds)
        void this.answerDrained(nodeId).catch((error: unknown) =>
          resources.logger.error({ err: error, nodeId }, "drained answer failed"),
        );
    });
  }

  async drain(nodeId: string, reason: string): Promise<void> {
    await this.resources.db
      .updateTable("nodes")
      .set({ draining: 1 })
      .where("id", "=", nodeId)
      .execute();
    await this.resources.inventory.refresh(nodeId);
    for (const lease of await this.failover.activeLeasesOf(nodeId))
      await this.queue.serial(lease.cluster_id, () =>
        this.failover.failLease(lease.cluster_id, lease.seq, {
          end: "drained",
          reason: `drained: ${reason}`,
        }),
      );
    await this.answerDrained(nodeId);
  }

  /** Tells a draining node it may stop, once it holds no lease. */
  private async answerDrained(nodeId: string): Promise<void> {
    const node = await this.resources.db
      .selectFrom("nodes")
      .select("draining")
      .where("id", "=", nodeId)
      .executeTakeFirst();
    if (node?.draining !== 1) return;
    if ((await this.failover.activeLeasesOf(nodeId)).length > 0) return;
    this.resources.workers.send(nodeId, { type: "drained" });
  }

  private async clearDraining(nodeId: string): Promise<void> {
    await this.resources.db
      .updateTable("nodes")
      .set({ draining: 0 })
      .where("id", "=", nodeId)
      .where("draining", "=", 1)
      .execute()
      .then(() => this.resources.inventory.refresh(nodeId))
      .catch((error: unknown) =>
        this.resources.logger.error({ err: error, nodeId }, "draining flag reset failed"),
      );
  }
}
