import { readFile } from "node:fs/promises";
import { join } from "node:path";
import type { TaskExit } from "../../protocol/worker-messages.ts";

/**
 * A task run (issue 20): several queued tasks of an autoscaled batch cluster in one sandbox, one
 * after another, each its own process (a subshell that execs the task's argv as given, with
 * `TANDEM_TASK` set to its number). One sandbox start serves them all, which is most of a trivial
 * task's cost (bench/tasks). After each task the harness appends "SEQ EXIT" to a file in the job
 * dir; the worker reads it once the run ends and reports every task's exit in its `job-exit`.
 * A task that never ended by itself (the run was stopped, or a task killed the harness) has no
 * line. The tasks share the consumer's job dir and sandbox: they are one cluster's, one owner's.
 */

/** The file, in the job dir, the harness records each task's exit in. */
export const TASK_EXITS_FILE = ".tandem-task-exits";

/** The run's command: `sh -c` over every task; `jobDirInside` is the job dir as the run sees it. */
export function taskRunCommand(
  tasks: ReadonlyArray<{ seq: number; command: readonly string[] }>,
  jobDirInside: string,
): string[] {
  const exits = shellQuote(`${jobDirInside}/${TASK_EXITS_FILE}`);
  const lines = [`: > ${exits}`];
  for (const task of tasks)
    lines.push(
      `(TANDEM_TASK=${task.seq}; export TANDEM_TASK; exec ${task.command.map(shellQuote).join(" ")}) </dev/null`,
      `echo "${task.seq} $?" >> ${exits}`,
    );
  return ["sh", "-c", lines.join("\n"), "tandem-tasks"];
}

/** Each task's exit as the harness recorded it, in order; tasks with no line never ended. */
export async function readTaskExits(
  jobDir: string,
  tasks: ReadonlyArray<{ seq: number }>,
): Promise<TaskExit[]> {
  const text = await readFile(join(jobDir, TASK_EXITS_FILE), "utf8").catch(() => "");
  const recorded = new Map<number, number>();
  for (const line of text.split("\n")) {
    const match = /^(\d+) (\d+)$/.exec(line);
    if (match !== null) recorded.set(Number(match[1]), Number(match[2]));
  }
  return tasks
    .filter((t) => recorded.has(t.seq))
    .map((t) => ({ seq: t.seq, exitCode: recorded.get(t.seq)! }));
}

/** One word for `sh`, whatever it holds. */
function shellQuote(word: string): string {
  return `'${word.replaceAll("'", `'\\''`)}'`;
}
