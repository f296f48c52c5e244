/**
 * Test helpers for the runtime tests: run a job to its end collecting its output, wait for a line,
 * and find host processes by a marker in their command line. Only the *.test.ts files import this.
 */
import { readdir, readFile } from "node:fs/promises";
import type { JobExit, JobRuntime, JobSpec, RunningJob } from "./job-runtime.ts";

export interface Finished {
  exit: JobExit;
  stdout: string;
  stderr: string;
}

/** Collects a running job's output until it has exited. */
export async function finish(job: RunningJob): Promise<Finished> {
  const text = (stream: NodeJS.ReadableStream): Promise<string> =>
    new Promise((resolve, reject) => {
      let out = "";
      stream.setEncoding("utf8");
      stream.on("data", (chunk: string) => (out += chunk));
      stream.on("end", () => resolve(out));
      stream.on("error", reject);
    });
  const [stdout, stderr, exit] = await Promise.all([
    text(job.stdout),
    text(job.stderr),
    job.exited,
  ]);
  return { exit, stdout, stderr };
}

/** Starts `spec` (with defaults for what it leaves out) and runs it to its end. */
export async function runToEnd(
  runtime: JobRuntime,
  spec: Partial<JobSpec> & Pick<JobSpec, "command" | "jobDir">,
): Promise<Finished> {
  return finish(await runtime.run(withDefaults(spec)));
}

let counter = 0;
export function withDefaults(
  spec: Partial<JobSpec> & Pick<JobSpec, "command" | "jobDir">,
): JobSpec {
  return {
    jobId: `job_test_${process.pid}_${++counter}`,
    env: {},
    limits: {},
    network: "none",
    ...spec,
  };
}

/** Resolves with the output so far once stdout has printed `text`. */
export function waitForOutput(job: RunningJob, text: string): Promise<string> {
  return new Promise((resolve, reject) => {
    let out = "";
    const onData = (chunk: Buffer): void => {
      out += chunk.toString("utf8");
      if (out.includes(text)) {
        job.stdout.off("data", onData);
        resolve(out);
      }
    };
    job.stdout.on("data", onData);
    job.stdout.once("end", () => reject(new Error(`stdout ended before "${text}": ${out}`)));
  });
}

/**
 * Wraps `runtime` so that every job it started can be killed in an `after` hook: a failed
 * assertion must not leave a sandbox running (it would keep the test process alive).
 */
export function tracking<R extends JobRuntime>(runtime: R): R & { killAll(): Promise<void> } {
  const jobs: RunningJob[] = [];
  return Object.assign(Object.create(runtime) as R, {
    kind: runtime.kind,
    async run(spec: JobSpec) {
      const job = await runtime.run(spec);
      jobs.push(job);
      return job;
    },
    async killAll() {
      await Promise.all(jobs.map((j) => j.kill(0)));
    },
  });
}

/** Host pids of live processes running exactly `sleep <seconds>`. */
export async function sleepers(seconds: string): Promise<number[]> {
  return processesWith(`sleep\0${seconds}\0`, true);
}

/**
 * Waits (up to 5 s) until at least `count` such sleepers run: a job prints "ready" as soon as it
 * has forked them, and under load a child may not have exec'd `sleep` yet.
 */
export async function sleepersAtLeast(seconds: string, count: number): Promise<number[]> {
  let found = await sleepers(seconds);
  for (let i = 0; i < 250 && found.length < count; i++) {
    await new Promise((resolve) => setTimeout(resolve, 20));
    found = await sleepers(seconds);
  }
  return found;
}

/** Host pids of live processes whose command line contains `marker` (or is it, when `exact`). */
export async function processesWith(marker: string, exact = false): Promise<number[]> {
  const found: number[] = [];
  for (const entry of await readdir("/proc")) {
    if (!/^\d+$/.test(entry) || Number(entry) === process.pid) continue;
    const [cmdline, stat] = await Promise.all([
      readFile(`/proc/${entry}/cmdline`, "utf8").catch(() => ""),
      readFile(`/proc/${entry}/stat`, "utf8").catch(() => ""),
    ]);
    const state = stat.slice(stat.lastIndexOf(")") + 2, stat.lastIndexOf(")") + 3);
    const match = exact ? cmdline === marker : cmdline.includes(marker);
    if (match && state !== "Z" && state !== "") found.push(Number(entry));
  }
  return found;
}

/** `env` output as an object. */
export function parseEnv(text: string): Record<string, string> {
  const env: Record<string, string> = {};
  for (const line of text.trim().split("\n")) {
    const eq = line.indexOf("=");
    if (eq > 0) env[line.slice(0, eq)] = line.slice(eq + 1);
  }
  return env;
}
