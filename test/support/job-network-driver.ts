/**
 * Runs the worker's job-network code inside a simulated host (hosts.ts): a child process that
 * reads one JSON request a line on stdin and answers one JSON line on stdout.
 *
 *   {"op":"create","options":{…JobNetnsOptions}} → {"ok":true,"name","path","link"}
 *   {"op":"destroy","name":…}                    → {"ok":true}
 *   {"op":"remove","name":…}                     → {"ok":true,"removed"}: removeJobNetwork, as the
 *                                                  fencing watchdog does (the handle is kept)
 *   {"op":"sweep","workerTag":…}                 → {"ok":true,"swept":{…}}
 *   {"op":"probe"}                               → {"ok":true,"capability":{…}}
 *   {"op":"setup","home","coordinatorUrl","spec"} → {"ok":true,"name","path","link","workerTag",
 *     "capability"}: the worker's start-up (setUpJobNetworks), then one rank network through it
 *   {"op":"run-fenced","options":{…},"command":[…],"jobDir":…}
 *                                                → {"ok":true,"name","pid"}: a job in a new job
 *     namespace through the process runtime, watched by a fencing watchdog (as the agent does)
 * Failures answer {"ok":false,"code","message"}.
 */
import { execFileSync } from "node:child_process";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import type { ChildProcess } from "node:child_process";
import {
  createJobNetns,
  removeJobNetwork,
  sweepJobNetworks,
  type JobNetns,
  type JobNetnsOptions,
} from "../../src/worker/network/job-netns.ts";
import { probeNetworkCapability } from "../../src/worker/network/network-capability.ts";
import { startFenceWatchdog, type FenceWatchdog } from "../../src/worker/fencing/fence-watchdog.ts";
import type { JobRuntime } from "../../src/worker/runtime/job-runtime.ts";
import { createProcessRuntime } from "../../src/worker/runtime/process-runtime.ts";
import type { JobNetworkSpec } from "../../src/protocol/cluster-network.ts";
import { setUpJobNetworks } from "../../src/worker/network/job-networks.ts";
import type { Hosts, SimulatedHost } from "./hosts.ts";

const ENTRY = fileURLToPath(import.meta.url);

/** The test's side: a driver running in `host`. */
export interface JobNetworkDriver {
  readonly child: ChildProcess;
  request(message: object): Promise<Record<string, unknown> & { ok: boolean }>;
  create(options: JobNetnsOptions): Promise<{
    name: string;
    path: string;
    link?: { veth: string; address: string; gateway: string };
  }>;
  destroy(name: string): Promise<void>;
}

export function startJobNetworkDriver(hosts: Hosts, host: SimulatedHost): JobNetworkDriver {
  const child = hosts.spawn(
    host,
    [process.execPath, "--import", import.meta.resolve("tsx"), ENTRY],
    {
      stdio: ["pipe", "pipe", "inherit"],
    },
  );
  const pending: Array<(answer: Record<string, unknown> & { ok: boolean }) => void> = [];
  createInterface({ input: child.stdout! }).on("line", (line) => {
    pending.shift()?.(JSON.parse(line) as Record<string, unknown> & { ok: boolean });
  });
  const request = (message: object) =>
    new Promise<Record<string, unknown> & { ok: boolean }>((resolve) => {
      pending.push(resolve);
      child.stdin!.write(JSON.stringify(message) + "\n");
    });
  return {
    child,
    request,
    async create(options) {
      const answer = await request({ op: "create", options });
      if (!answer.ok) throw new Error(`create: ${String(answer.code)} ${String(answer.message)}`);
      return answer as never;
    },
    async destroy(name) {
      const answer = await request({ op: "destroy", name });
      if (!answer.ok) throw new Error(`destroy: ${String(answer.code)} ${String(answer.message)}`);
    },
  };
}

/**
 * What `host` and /run/netns hold of worker tag `tag`: namespaces, veths (by their alias) and
 * nftables tables, one line each; [] when nothing is left.
 */
export async function jobNetworkLeftovers(
  hosts: Hosts,
  host: SimulatedHost,
  tag: string,
): Promise<string[]> {
  const links = await hosts.exec(host, ["ip", "-o", "link", "show", "type", "veth"]);
  const tables = await hosts.exec(host, ["nft", "list", "tables"]);
  const namespaces = execFileSync("ip", ["netns", "list"], { encoding: "utf8" });
  return [
    ...namespaces.split("\n").filter((l) => l.startsWith(`tdm-${tag}-`)),
    ...links.stdout.split("\n").filter((l) => l.includes(`alias tdm-${tag}-`)),
    ...tables.stdout.split("\n").filter((l) => l.includes(`tdm_${tag}_`)),
  ];
}

async function serve(): Promise<void> {
  const made = new Map<string, JobNetns>();
  let watchdog: FenceWatchdog | undefined;
  let fenced: JobRuntime | undefined;
  const answer = (message: object) => process.stdout.write(JSON.stringify(message) + "\n");
  const lines = createInterface({ input: process.stdin });
  for await (const line of lines) {
    const message = JSON.parse(line) as Record<string, unknown>;
    try {
      if (message.op === "create") {
        const netns = await createJobNetns(message.options as JobNetnsOptions);
        made.set(netns.name, netns);
        answer({ ok: true, name: netns.name, path: netns.path, link: netns.link });
      } else if (message.op === "destroy") {
        await made.get(String(message.name))?.destroy();
        answer({ ok: true });
      } else if (message.op === "remove") {
        answer({ ok: true, removed: await removeJobNetwork(String(message.name)) });
      } else if (message.op === "sweep") {
        answer({ ok: true, swept: await sweepJobNetworks(String(message.workerTag)) });
      } else if (message.op === "setup") {
        const setup = await setUpJobNetworks({
          home: String(message.home),
          coordinatorUrls: [String(message.coordinatorUrl)],
          log: () => undefined,
        });
        if (setup.jobNetworks === undefined) throw new Error(setup.capability.problems.join("; "));
        const netns = await setup.jobNetworks.create(message.spec as JobNetworkSpec);
        made.set(netns.name, netns);
        const { capability, workerTag } = setup;
        answer({
          ok: true,
          name: netns.name,
          path: netns.path,
          link: netns.link,
          workerTag,
          capability,
        });
      } else if (message.op === "run-fenced") {
        watchdog ??= startFenceWatchdog(() => undefined);
        fenced ??= watchdog.guard(createProcessRuntime());
        const netns = await createJobNetns(message.options as JobNetnsOptions);
        made.set(netns.name, netns);
        const job = await fenced.run({
          jobId: `job_fenced_${made.size}`,
          command: message.command as string[],
          env: {},
          jobDir: String(message.jobDir),
          limits: {},
          network: { namespace: netns.path },
        });
        answer({ ok: true, name: netns.name, pid: job.pid });
      } else if (message.op === "probe") {
        answer({ ok: true, capability: await probeNetworkCapability({ workerTag: "probe" }) });
      } else {
        answer({ ok: false, code: "UNKNOWN_OP", message: String(message.op) });
      }
    } catch (error) {
      const code = (error as { code?: unknown }).code;
      answer({
        ok: false,
        code: typeof code === "string" ? code : "ERROR",
        message: String(error),
      });
    }
  }
}

if (process.argv[1] === ENTRY) await serve();
