import type { FastifyBaseLogger } from "fastify";
import type { Kysely } from "kysely";
import type { Clock } from "../../core/clock.ts";
import type { CoordinatorEvents } from "../events.ts";
import type { Database } from "../store/schema.ts";
import type { Inventory } from "./inventory.ts";
import type { ClusterPayments } from "./payments.ts";
import type { WorkerChannel } from "./worker-channel.ts";

/** What every system of the scheduler folder works with; main.ts builds it once. */
export interface SchedulerResources {
  db: Kysely<Database>;
  clock: Clock;
  inventory: Inventory;
  workers: WorkerChannel;
  payments: ClusterPayments;
  events: CoordinatorEvents;
  logger: FastifyBaseLogger;
}
