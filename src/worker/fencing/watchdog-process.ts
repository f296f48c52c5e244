/**
 * The fencing watchdog: a small process beside the worker agent that ends every job it watches
 * once the agent stops renewing its fence (DESIGN.md §5.7, issue 18.8).
 *
 * Self-fencing inside the agent needs the agent to run: a SIGSTOPped, swapping or GC-stalled agent
 * checks nothing, so its jobs ran on while the coordinator gave their ranks to other nodes (5.8,
 * 7.6 and 6.4 s of one rank on two nodes, measured). This process shares nothing with the agent's
 * event loop. The agent tells it, on stdin, one JSON object a line:
 *
 *   {"renew": N}                              the fence is N ms from now (the agent's own remaining
 *                                             budget: last proof of contact + fenceAfterMs − now)
 *   {"watch": id, "pid": P, "kill": [argv],   a job: SIGKILL P and its process group at the
 *    "network": name}                         fence, run argv (e.g. `podman kill …`) if given, and
 *                                             remove its network namespace, veth and rules
 *                                             (job-netns.ts) if it has one
 *   {"unwatch": id}                           the job ended
 *
 * When the fence passes (on the monotonic clock) every watched job is killed and forgotten, and
 * `{"fenced": [ids]}` is written to stdout. When stdin ends (the agent died), every job is killed
 * too (their networks removed) and the process exits: nobody is left to keep its ranks fenced.
 */
import { spawn } from "node:child_process";
import { createInterface } from "node:readline";
import { removeJobNetwork } from "../network/job-netns.ts";

interface Watched {
  pid: number;
  kill: readonly string[] | undefined;
  network: string | undefined;
}

/** Network removals under way; the process waits for them before it exits. */
const removals = new Set<Promise<void>>();

function removeNetwork(name: string): void {
  const removal = removeJobNetwork(name).then(
    () => undefined,
    (error: unknown) => {
      process.stderr.write(
        `fencing watchdog: cannot remove job network ${name}: ${String(error)}\n`,
      );
    },
  );
  removals.add(removal);
  void removal.finally(() => removals.delete(removal));
}

const watched = new Map<string, Watched>();
/** Monotonic time of the fence; none before the first renewal (nothing can be fenced yet). */
let fenceAtMs: number | undefined;
let timer: NodeJS.Timeout | undefined;

function signalQuietly(pid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(pid, signal);
  } catch {
    // Gone already (ESRCH), or not ours to signal: nothing more this process can do.
  }
}

function killAll(): string[] {
  const ids = [...watched.keys()];
  for (const { pid, kill, network } of watched.values()) {
    signalQuietly(-pid, "SIGKILL"); // its process group, where it leads one
    signalQuietly(pid, "SIGKILL");
    if (kill !== undefined && kill.length > 0) {
      const child = spawn(kill[0]!, kill.slice(1), { stdio: "ignore" });
      child.on("error", () => undefined);
    }
    // The namespace may outlive its last process for a moment; removing its name, veth and table
    // now is what matters (the kernel frees the rest when the processes are gone).
    if (network !== undefined) removeNetwork(network);
  }
  watched.clear();
  return ids;
}

function armTimer(): void {
  clearTimeout(timer);
  if (fenceAtMs === undefined || watched.size === 0) return;
  timer = setTimeout(fence, Math.max(0, fenceAtMs - performance.now()));
}

function fence(): void {
  if (fenceAtMs === undefined || performance.now() < fenceAtMs) return armTimer();
  const ids = killAll();
  if (ids.length > 0) process.stdout.write(JSON.stringify({ fenced: ids }) + "\n");
}

function onLine(line: string): void {
  let message: Record<string, unknown>;
  try {
    message = JSON.parse(line) as Record<string, unknown>;
  } catch {
    return;
  }
  if (typeof message.renew === "number") {
    fenceAtMs = performance.now() + message.renew;
  } else if (typeof message.watch === "string" && typeof message.pid === "number") {
    const kill = Array.isArray(message.kill)
      ? message.kill.filter((a): a is string => typeof a === "string")
      : undefined;
    const network = typeof message.network === "string" ? message.network : undefined;
    watched.set(message.watch, { pid: message.pid, kill, network });
  } else if (typeof message.unwatch === "string") {
    watched.delete(message.unwatch);
  }
  armTimer();
}

const input = createInterface({ input: process.stdin });
input.on("line", onLine);
input.on("close", () => {
  killAll();
  void Promise.all(removals).finally(() => process.exit(0));
});
// The agent's signals are not ours: a Ctrl-C to the agent's group must not end the watchdog
// before the agent has stopped its jobs (stdin's end tells us when it is gone).
process.on("SIGINT", () => undefined);
process.on("SIGTERM", () => undefined);
