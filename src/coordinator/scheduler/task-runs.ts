import { jobNetworkSpec } from "./cluster-network.ts";
import type { LoadedCluster } from "./cluster-store.ts";
import { startMessage } from "./leases.ts";

/*
 * Task runs (issue 20): an idle node of an autoscaled batch cluster takes several queued tasks at
 * once and runs them one after another in one sandbox (src/worker/jobs/task-run.ts), so that one
 * sandbox start, one pair of messages and one transaction each way serve them all. The queue is
 * shared out evenly among the idle nodes (ceil(queued / idle), at most MAX_TASKS_PER_RUN each), so
 * a short queue still spreads over every node and a long one keeps each node's runs long.
 */

/** The `job-start` of a task run: one task as its command, several as its `tasks`. */
export function taskRunStart(
  cluster: LoadedCluster,
  rank: number,
  worldSize: number,
  tasks: ReadonlyArray<{ seq: number; command: string }>,
) {
  const commands = tasks.map((t) => JSON.parse(t.command) as string[]);
  const spec = {
    kind: cluster.kind,
    command: commands[0]!,
    env: cluster.spec.env,
    image: cluster.spec.image,
    limits: cluster.spec.limits,
    network: jobNetworkSpec(cluster.spec, worldSize, true),
  };
  const start = startMessage(cluster.id, spec, rank, tasks[0]!.seq, worldSize, null);
  return tasks.length === 1
    ? start
    : { ...start, tasks: tasks.map((t, i) => ({ seq: t.seq, command: commands[i]! })) };
}

/**
 * `queued` (oldest first) shared out among `nodes` idle nodes, at most `perNode` each, in runs
 * whose commands stay under RUN_COMMANDS_CHARS of JSON together (a `job-start` stays small).
 */
export function shareOut<T extends { command: string }>(
  queued: readonly T[],
  nodes: number,
  perNode: number,
): T[][] {
  const runs: T[][] = [];
  let at = 0;
  for (let i = 0; i < nodes && at < queued.length; i++) {
    const run: T[] = [queued[at++]!];
    let chars = run[0]!.command.length;
    while (at < queued.length && run.length < perNode) {
      chars += queued[at]!.command.length;
      if (chars > RUN_COMMANDS_CHARS) break;
      run.push(queued[at++]!);
    }
    runs.push(run);
  }
  return runs;
}

/** Most JSON characters of the commands of one task run together. */
const RUN_COMMANDS_CHARS = 16_384;

/** "12-15" for tasks 12 to 15 (their numbers need not be consecutive: "3, 7-9"). */
export function taskRange(tasks: ReadonlyArray<{ seq: number }>): string {
  const parts: string[] = [];
  for (const { seq } of tasks) {
    const last = parts.at(-1);
    const m = last === undefined ? null : /^(\d+)(?:-(\d+))?$/.exec(last);
    const end = m === null ? undefined : Number(m[2] ?? m[1]);
    if (m !== null && end === seq - 1) parts[parts.length - 1] = `${m[1]}-${seq}`;
    else parts.push(String(seq));
  }
  return parts.join(", ");
}
