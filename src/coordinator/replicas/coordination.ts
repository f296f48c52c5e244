import type { FastifyBaseLogger } from "fastify";
import type pg from "pg";
import type { Clock } from "../../core/clock.ts";
import { PROCESS_LOCAL, type ClusterLocks } from "../scheduler/cluster-queue.ts";
import { PostgresClusterLocks } from "./cluster-locks.ts";
import { PostgresLeaderElection, SoleLeader, type Leadership } from "./leader-election.ts";

/** How this coordinator shares the work with other replicas (DESIGN.md §7). */
export interface Coordination {
  /** Who runs the singleton loops, fenced by term. */
  readonly leadership: Leadership;
  /** What holds a cluster between replicas while one works on it. */
  readonly clusterLocks: ClusterLocks;
}

/**
 * On SQLite (no `newSession`) the one process leads alone and its queue orders every cluster; on
 * PostgreSQL it is a replica among others: it takes part in the election and holds clusters by
 * advisory locks, both on sessions of their own that the server ends after `leaseMs` of silence.
 */
export function coordinationOf(
  replicaId: string,
  deps: { newSession: (() => pg.Client) | undefined; clock: Clock; logger: FastifyBaseLogger },
  options: { leaderPollMs: number; leaderLeaseMs: number },
): Coordination {
  const { newSession, clock, logger } = deps;
  if (newSession === undefined)
    return { leadership: new SoleLeader(replicaId), clusterLocks: PROCESS_LOCAL };
  const leaseMs = options.leaderLeaseMs;
  return {
    leadership: new PostgresLeaderElection(
      replicaId,
      { newSession, clock, logger },
      { pollMs: options.leaderPollMs, leaseMs },
    ),
    // A cluster held by a replica that went silent is free after its lease; waiting three leases
    // for one means something else is wrong.
    clusterLocks: new PostgresClusterLocks(
      { newSession, logger },
      { leaseMs, waitMs: 3 * leaseMs },
    ),
  };
}
