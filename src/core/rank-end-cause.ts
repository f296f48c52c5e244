/**
 * Who is at fault when a rank ends (DESIGN.md §8.6, issue 18). Every way a rank's lease can end is
 * one {@link RankEnd}, and each has exactly one {@link RankEndCause}:
 *
 * | end                | cause    | slash | reputation | when                                                   |
 * | ------------------ | -------- | ----- | ---------- | ------------------------------------------------------ |
 * | finished           | consumer | no    | no         | the job exited 0                                       |
 * | exit-nonzero       | consumer | no    | no         | the job exited non-zero or by a signal                 |
 * | image-missing      | consumer | no    | no         | the deploy named an image the node does not hold       |
 * | invalid-job        | consumer | no    | no         | the runtime refused the job (bad command or spec)      |
 * | limit-exceeded     | consumer | no    | no         | the job went past a limit (memory, disk, processes)    |
 * | cluster-ended      | consumer | no    | no         | the cluster ended (terminated, expired, completed)     |
 * | node-offline       | supplier | yes   | yes        | missed heartbeats, a failed GPU check, a worker gone   |
 * | node-revoked       | supplier | yes   | yes        | an admin or the owner revoked the device               |
 * | start-failed       | supplier | yes   | yes        | the node could not run what it advertised              |
 * | never-accepted     | supplier | no    | yes        | reserved, but never took its rank in time              |
 * | drained            | supplier | no    | no         | an announced stop (the rank moved first)               |
 * | link-lost          | network  | no    | no         | the worker fenced its rank while the coordinator still |
 * |                    |          |       |            | held its lease: the link, not the node, was lost       |
 * | coordinator-outage | network  | no    | no         | the coordinator itself was down                        |
 *
 * Only supplier causes slash or lower reputation; a drain is the supplier's doing but announced,
 * so it costs nothing. A consumer's cause never moves the rank to another node: the same job would
 * fail there too (a missing image slashed one supplier per node tried before this table).
 */

export const RankEndCause = {
  consumer: "consumer",
  supplier: "supplier",
  network: "network",
} as const;
export type RankEndCause = (typeof RankEndCause)[keyof typeof RankEndCause];

/** What a rank's end costs its node. */
export interface RankEndPenalty {
  readonly cause: RankEndCause;
  /** The node forfeits a slash to the consumer. */
  readonly slash: boolean;
  /** The end counts against the node's reputation. */
  readonly reputation: boolean;
}

const consumer: RankEndPenalty = { cause: "consumer", slash: false, reputation: false };
const network: RankEndPenalty = { cause: "network", slash: false, reputation: false };

/** Every way a rank can end, with its cause and penalty (the table above). */
export const RANK_ENDS = {
  finished: consumer,
  "exit-nonzero": consumer,
  "image-missing": consumer,
  "invalid-job": consumer,
  "limit-exceeded": consumer,
  "cluster-ended": consumer,
  "node-offline": { cause: "supplier", slash: true, reputation: true },
  "node-revoked": { cause: "supplier", slash: true, reputation: true },
  "start-failed": { cause: "supplier", slash: true, reputation: true },
  "never-accepted": { cause: "supplier", slash: false, reputation: true },
  drained: { cause: "supplier", slash: false, reputation: false },
  "link-lost": network,
  "coordinator-outage": network,
} as const satisfies Record<string, RankEndPenalty>;

export type RankEnd = keyof typeof RANK_ENDS;
/** The ends that take a lease from its node early: every end not the consumer's. */
export type LeaseLossEnd = {
  [K in RankEnd]: (typeof RANK_ENDS)[K]["cause"] extends "consumer" ? never : K;
}[RankEnd];
export const RANK_END_NAMES = Object.keys(RANK_ENDS) as RankEnd[];

/** The cause of `end`. */
export function rankEndCause(end: RankEnd): RankEndCause {
  return RANK_ENDS[end].cause;
}

/** What `end` costs the node that held the rank. */
export function rankEndPenalty(end: RankEnd): RankEndPenalty {
  return RANK_ENDS[end];
}

/** Why a worker could not start a rank, as it reports it (protocol `job-exit.startFailure`). */
export type StartFailure = "image-missing" | "invalid-job" | "start-failed";

/**
 * How a rank that ran (or tried to) ended, from its worker's report: a limit it went past; a
 * start failure (no exit code, an error) as the worker classed it, an unclassed one being the
 * node's; else its exit code (a signal, with no code, is the job's end too).
 */
export function exitEnd(exit: {
  exitCode: number | null;
  error: string | null;
  startFailure?: StartFailure | undefined;
  limitExceeded?: boolean | undefined;
}): RankEnd {
  if (exit.limitExceeded === true) return "limit-exceeded";
  if (exit.exitCode === null && exit.error !== null) return exit.startFailure ?? "start-failed";
  return exit.exitCode === 0 ? "finished" : "exit-nonzero";
}
