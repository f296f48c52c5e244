import { MAX_TASKS_PER_SUBMIT } from "../../protocol/clusters.ts";

/**
 * A task file for `tandem cluster submit <id> --file`: one task per line, run as `sh -c LINE`
 * (like Slurm's `--wrap`), so a line may use quotes, pipes and redirections. Blank lines and
 * lines whose first non-blank character is `#` are skipped.
 */
export function taskCommands(text: string): string[][] {
  return text
    .split("\n")
    .map((line) => line.replace(/\r$/, ""))
    .filter((line) => line.trim() !== "" && !line.trimStart().startsWith("#"))
    .map((line) => ["sh", "-c", line]);
}

/** The commands in request-sized slices, in order. */
export function taskBatches(commands: readonly string[][]): string[][][] {
  const batches: string[][][] = [];
  for (let at = 0; at < commands.length; at += MAX_TASKS_PER_SUBMIT)
    batches.push(commands.slice(at, at + MAX_TASKS_PER_SUBMIT));
  return batches;
}

/** Everything on standard input, as UTF-8. */
export async function readStdin(): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString("utf8");
}
