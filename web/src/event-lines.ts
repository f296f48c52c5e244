/**
 * Cluster events and node history rows as one line people read: what happened, to which rank and
 * node, why, and how long it took. The coordinator writes each event's `detail` as it sees fit
 * (src/coordinator/scheduler/*: `appendClusterEvent`; src/coordinator/registry/*: `appendHistory`)
 * and the public API strips most of it (PUBLIC_CLUSTER_EVENTS), so every field is optional here: a
 * line says what it has. A type or action this file does not know still reads as words ("Quota
 * changed: nodes 3, reason …"), never as JSON.
 */

/** The part of a cluster event or a history row a line is made from. */
export interface EventLike {
  readonly type: string;
  readonly detail: Readonly<Record<string, unknown>>;
}

type Detail = Readonly<Record<string, unknown>>;

function str(d: Detail, key: string): string | undefined {
  const v = d[key];
  return typeof v === "string" && v !== "" ? v : undefined;
}

function num(d: Detail, key: string): number | undefined {
  const v = d[key];
  return typeof v === "number" && Number.isFinite(v) ? v : undefined;
}

function strings(d: Detail, key: string): string[] {
  const v = d[key];
  return Array.isArray(v) ? v.filter((x): x is string => typeof x === "string") : [];
}

/** "850 ms", "3.4 s", "2 min 5 s", "1 h 20 min". */
export function formatDurationMs(ms: number): string {
  if (ms < 1000) return `${Math.max(0, Math.round(ms))} ms`;
  if (ms < 60_000) return `${(ms / 1000).toFixed(1)} s`;
  const totalS = Math.round(ms / 1000);
  if (totalS < 3600) {
    const s = totalS % 60;
    return `${Math.floor(totalS / 60)} min${s === 0 ? "" : ` ${s} s`}`;
  }
  const totalMin = Math.round(totalS / 60);
  const min = totalMin % 60;
  return `${Math.floor(totalMin / 60)} h${min === 0 ? "" : ` ${min} min`}`;
}

/** "lease-ended" → "Lease ended"; "fromNodeId" → "from node id". */
function words(name: string): string {
  return name
    .replace(/MiB/g, "-mib-")
    .replace(/([a-z0-9])([A-Z])/g, "$1 $2")
    .split(/[-_ ]+/)
    .filter((w) => w !== "")
    .map((w) => (w === "mib" ? "MiB" : w.toLowerCase()))
    .join(" ");
}

function capitalize(text: string): string {
  return text.charAt(0).toUpperCase() + text.slice(1);
}

/** Any value as words: lists joined by commas, objects as "key value" pairs in parentheses. */
function valueWords(value: unknown): string {
  if (value === null || value === undefined) return "none";
  if (typeof value === "string") return value;
  if (typeof value === "number" || typeof value === "bigint") return String(value);
  if (typeof value === "boolean") return value ? "yes" : "no";
  if (Array.isArray(value)) return value.length === 0 ? "none" : value.map(valueWords).join(", ");
  if (typeof value === "object") return `(${pairs(value as Detail)})`;
  return "?";
}

function pairs(detail: Detail): string {
  return Object.entries(detail)
    .map(([key, value]) => `${words(key)} ${valueWords(value)}`)
    .join(", ");
}

/** A line for a type nobody taught this file: its name in words, then its reason and details. */
export function genericLine(type: string, detail: Detail): string {
  const { reason, ...rest } = detail;
  const parts = [
    typeof reason === "string" && reason !== "" ? reason : undefined,
    Object.keys(rest).length > 0 ? pairs(rest) : undefined,
  ].filter((p) => p !== undefined);
  const title = capitalize(words(type)) || "Event";
  return parts.length === 0 ? title : `${title}: ${parts.join("; ")}`;
}

const CAUSES: Record<string, string> = {
  consumer: "the job's own doing, no slash",
  supplier: "the node's fault",
  network: "the network's fault, no slash",
};

/** How a rank's lease ended (src/core/rank-end-cause.ts), in words. */
const ENDS: Record<string, string> = {
  finished: "it finished",
  "exit-nonzero": "the job failed",
  "image-missing": "the image is missing on the node",
  "invalid-job": "the runtime refused the job",
  "limit-exceeded": "the job went past a limit",
  "cluster-ended": "the cluster ended",
  "node-offline": "the node went offline",
  "node-revoked": "the node was revoked",
  "start-failed": "the node could not start it",
  "never-accepted": "the node never accepted it",
  drained: "the node was drained",
  "link-lost": "the link to the node was lost",
  "coordinator-outage": "the coordinator was down",
};

function causeWords(d: Detail): string | undefined {
  const cause = str(d, "cause");
  return cause === undefined ? undefined : (CAUSES[cause] ?? `caused by the ${cause}`);
}

function endWords(d: Detail): string | undefined {
  const end = str(d, "end");
  return end === undefined ? undefined : (ENDS[end] ?? words(end));
}

/** "exit code 3", "killed by SIGKILL, memory limit exceeded", "could not start: …". */
export function exitWords(d: Detail): string {
  const parts: string[] = [];
  const code = num(d, "exitCode");
  const signal = str(d, "signal");
  if (code !== undefined) parts.push(`exit code ${code}`);
  if (signal !== undefined) parts.push(`killed by ${signal}`);
  const limit = str(d, "limitExceeded");
  if (limit !== undefined) parts.push(`${limit} limit exceeded`);
  const error = str(d, "error");
  if (error !== undefined) parts.push(code === undefined ? `could not start: ${error}` : error);
  return parts.length === 0 ? "no exit code" : parts.join(", ");
}

/** "; the node went offline (the node's fault)" from a detail's `end` and `cause`. */
function blame(d: Detail): string {
  const end = endWords(d);
  const cause = causeWords(d);
  if (end === undefined && cause === undefined) return "";
  if (end === undefined) return ` (${cause})`;
  return `: ${end}${cause === undefined ? "" : ` (${cause})`}`;
}

function rankOf(d: Detail): string {
  const rank = num(d, "rank");
  return rank === undefined ? "A rank" : `Rank ${rank}`;
}

function on(d: Detail, key = "nodeId"): string {
  const node = str(d, key);
  return node === undefined ? "" : ` on ${node}`;
}

function withReason(d: Detail): string {
  const reason = str(d, "reason");
  return reason === undefined ? "" : `: ${reason}`;
}

function reservedLine(d: Detail): string {
  const nodes = Array.isArray(d.nodes) ? (d.nodes as unknown[]) : [];
  const ttl = num(d, "reservationTtlMs");
  if (nodes.length === 0) return "Nodes reserved";
  const each = nodes.map((n) => {
    if (typeof n !== "object" || n === null) return valueWords(n);
    const node = n as Detail;
    const who = num(node, "rank") === undefined ? "standby" : `rank ${num(node, "rank")}`;
    const zone = str(node, "zone");
    return `${who} on ${str(node, "nodeId") ?? "a node"}${zone === undefined ? "" : ` (${zone})`}`;
  });
  const within = ttl === undefined ? "" : `; each must start within ${formatDurationMs(ttl)}`;
  return `Reserved ${nodes.length} ${nodes.length === 1 ? "node" : "nodes"}: ${each.join(", ")}${within}`;
}

function failoverLine(d: Detail): string {
  const to = str(d, "toNodeId");
  const via = str(d, "via");
  const target = to === undefined ? "another node" : `${via === "standby" ? "standby " : ""}${to}`;
  const from = str(d, "fromNodeId");
  const reason = str(d, "reason");
  const detected = str(d, "detectedAt");
  const lastSeen = str(d, "lastSeenAt");
  const extra: string[] = [];
  if (reason !== undefined) extra.push(reason);
  const cause = causeWords(d);
  if (cause !== undefined) extra.push(cause);
  if (detected !== undefined && lastSeen !== undefined)
    extra.push(
      `noticed ${formatDurationMs(Date.parse(detected) - Date.parse(lastSeen))} after its last heartbeat`,
    );
  if (str(d, "restart") === "all") extra.push("every rank restarts");
  return `${rankOf(d)} moved${from === undefined ? "" : ` from ${from}`} to ${target}${
    extra.length === 0 ? "" : ` (${extra.join("; ")})`
  }`;
}

function takeoverLine(d: Detail): string {
  const from = str(d, "fromNodeId");
  const ms = num(d, "takeoverMs");
  const since = num(d, "sinceLastSeenMs");
  const timing = [
    ms === undefined ? undefined : `${formatDurationMs(ms)} after the failure was noticed`,
    since === undefined
      ? undefined
      : `${formatDurationMs(since)} after the lost node's last heartbeat`,
  ].filter((p) => p !== undefined);
  return `${rankOf(d)} running again${on(d)}${from === undefined ? "" : ` (taken over from ${from})`}${
    timing.length === 0 ? "" : `, ${timing.join(", ")}`
  }`;
}

function scaledLine(direction: "up" | "down", d: Detail): string {
  const from = num(d, "from");
  const to = num(d, "to");
  const nodes = strings(d, "nodes");
  const span = from === undefined || to === undefined ? "" : ` from ${from} to ${to} nodes`;
  const which =
    nodes.length === 0 ? "" : ` (${direction === "up" ? "added" : "released"} ${nodes.join(", ")})`;
  return `Scaled ${direction}${span}${which}${withReason(d)}`;
}

function slashedLine(d: Detail): string {
  const taken = str(d, "taken");
  const owed = str(d, "owed");
  const shortfall = str(d, "shortfall");
  const rank = num(d, "rank");
  const fromStake = str(d, "fromStake");
  const staked =
    fromStake === undefined || fromStake === "0.000000" ? "" : ` (${fromStake} from its stake)`;
  const amount =
    taken === undefined
      ? ""
      : ` ${taken}${owed !== undefined && owed !== taken ? ` of ${owed} owed` : ""}${staked}`;
  const short =
    shortfall !== undefined && /[1-9]/.test(shortfall) ? `, ${shortfall} could not be taken` : "";
  return `${str(d, "nodeId") ?? "A node"} slashed${amount} to the owner${
    rank === undefined ? "" : ` for rank ${rank}`
  }${short}${blame(d)}`;
}

function endedLine(status: string, d: Detail): string {
  const reason = str(d, "reason");
  return `${capitalize(status)}${reason === undefined ? "" : `: ${reason}`}`;
}

/** One cluster event as a line: what happened, to which rank and node, why, how long. */
export function clusterEventLine(event: EventLike): string {
  const d = event.detail;
  switch (event.type) {
    case "reserved":
      return reservedLine(d);
    case "secrets-pending":
      return `Waiting for the secrets ${strings(d, "names").join(", ") || "named at deploy"}`;
    case "secrets-sealed": {
      const nodes = num(d, "nodes");
      return `Secrets ${strings(d, "names").join(", ") || "sealed"} sealed${
        nodes === undefined ? "" : ` to ${nodes} ${nodes === 1 ? "node" : "nodes"}`
      }`;
    }
    case "secrets-resealed":
      return `Secrets resealed${str(d, "fromNodeId") === undefined ? "" : ` by ${str(d, "fromNodeId")}`} to ${str(d, "toNodeId") ?? "a new node"}`;
    case "overlay-joined":
      return `${rankOf(d)}${on(d)} joined the cluster network${d.behindNat === true ? " (behind NAT, relayed)" : ""}`;
    case "head-ready": {
      const address = str(d, "address");
      const port = num(d, "port");
      return `Head ready${on(d)}${address === undefined ? "" : ` at ${address}${port === undefined ? "" : `:${port}`}`}`;
    }
    case "running": {
      const ms = num(d, "provisioningMs");
      return `Running${ms === undefined ? "" : `, ${formatDurationMs(ms)} after the deploy`}`;
    }
    case "extended": {
      const hours = num(d, "hours");
      const total = num(d, "totalHours");
      return `Extended${hours === undefined ? "" : ` by ${hours} h`}${total === undefined ? "" : `, ${total} h paid in all`}`;
    }
    case "rank-exited":
      return `${rankOf(d)} exited: ${exitWords(d)}${blame(d)}`;
    case "task-ended": {
      const task = num(d, "task");
      const rank = num(d, "rank");
      return `${task === undefined ? "A task" : `Task ${task}`}${
        rank === undefined ? "" : ` on rank ${rank}`
      } ended: ${exitWords(d)}`;
    }
    case "scaled-up":
      return scaledLine("up", d);
    case "scaled-down":
      return scaledLine("down", d);
    case "slashed":
      return slashedLine(d);
    case "node-lost": {
      const task = num(d, "task");
      return `${str(d, "nodeId") ?? "A node"} lost${num(d, "rank") === undefined ? "" : ` (rank ${num(d, "rank")})`}${withReason(d)}${
        task === undefined ? "" : `; task ${task} goes back to the queue`
      }${causeWords(d) === undefined ? "" : ` (${causeWords(d)})`}`;
    }
    case "standby-lost":
      return `Standby ${str(d, "nodeId") ?? "node"} lost${withReason(d)}${causeWords(d) === undefined ? "" : ` (${causeWords(d)})`}`;
    case "rank-lost":
      return `${rankOf(d)} lost with ${str(d, "nodeId") ?? "its node"}${withReason(d)}; no standby or replacement took it`;
    case "failover":
      return failoverLine(d);
    case "takeover":
      return takeoverLine(d);
    case "completed":
    case "failed":
    case "terminated":
    case "expired":
      return endedLine(event.type, d);
    default:
      return genericLine(event.type, d);
  }
}

/** The statuses a cluster ends in; each writes an event of its name with the reason. */
export const ENDED: ReadonlySet<string> = new Set(["completed", "failed", "terminated", "expired"]);

/** Why a cluster ended, from its events: the final event's reason and, for a failure, the exit. */
export function clusterEndReason(
  status: string,
  events: ReadonlyArray<EventLike>,
): string | undefined {
  if (!ENDED.has(status)) return undefined;
  const final = events.findLast((e) => e.type === status);
  if (final === undefined) return "no reason recorded";
  const reason = str(final.detail, "reason") ?? "no reason recorded";
  if (status !== "failed") return reason;
  const exit = events.findLast((e) => e.type === "rank-exited" && e.detail.exitCode !== 0);
  if (exit === undefined) return reason;
  const cause = causeWords(exit.detail);
  return `${reason}: ${exitWords(exit.detail)}${cause === undefined ? "" : ` (${cause})`}`;
}

/** "8 × h100-80gb", "CPU only", from a history row's `gpus` and `gpuModel`. */
function gpusWords(d: Detail): string | undefined {
  const gpus = num(d, "gpus");
  if (gpus === undefined) return undefined;
  return gpus === 0 ? "CPU only" : `${gpus} × ${str(d, "gpuModel") ?? "unrecognized GPU"}`;
}

function metadataLine(d: Detail): string {
  const changed = strings(d, "changed");
  const parts: string[] = [];
  if (changed.includes("price")) {
    const currency = str(d, "currency");
    const previous = str(d, "previous");
    parts.push(
      `price set to ${str(d, "pricePerHour") ?? "?"}${currency === undefined ? "" : ` ${currency}`}/h${
        previous === undefined ? " (was the catalog price)" : ` (was ${previous})`
      }`,
    );
  }
  if (changed.includes("gpuModel"))
    parts.push(
      `rented as ${str(d, "provenModel") ?? "?"}, the model it proved (reported ${
        str(d, "reportedModel") ?? "none"
      }${num(d, "vramMiB") === undefined ? "" : `, ${num(d, "vramMiB")} MiB VRAM`})`,
    );
  const others = changed.filter((c) => c !== "price" && c !== "gpuModel");
  if (others.length > 0) parts.push(`${others.map(words).join(", ")} changed`);
  const unverified = str(d, "unverified");
  if (unverified !== undefined) parts.push(`must prove itself again: ${unverified}`);
  return parts.length === 0 ? genericLine("metadata", d) : capitalize(parts.join("; "));
}

function leaseEndedLine(d: Detail): string {
  const cluster = str(d, "clusterId");
  const outcome = str(d, "outcome");
  const slashed = str(d, "slashed");
  const currency = str(d, "currency");
  const reason = str(d, "reason");
  const cause = causeWords(d);
  return [
    `Lease${cluster === undefined ? "" : ` on ${cluster}`} ${outcome ?? "ended"}`,
    reason === undefined ? "" : `: ${reason}`,
    cause === undefined ? "" : ` (${cause})`,
    slashed !== undefined && /[1-9]/.test(slashed)
      ? `; slashed ${slashed}${currency === undefined ? "" : ` ${currency}`}`
      : "",
  ].join("");
}

function flaggedLine(d: Detail): string {
  const { flag, ...rest } = d;
  const uuids = strings(d, "uuids");
  const why =
    uuids.length > 0
      ? `: ${uuids.join(", ")} also reported by another device`
      : Object.keys(rest).length > 0
        ? ` (${pairs(rest)})`
        : "";
  return `Flagged ${typeof flag === "string" ? flag : "(no flag named)"}${why}; never placed while flagged`;
}

/**
 * A node history row (not a proof of hardware, which has its own table) as a line: a status
 * change's reason, a registration, a change of price or model, a flag, a lease's end.
 */
export function historyLine(entry: { action: string; detail: Detail }): string {
  const d = entry.detail;
  switch (entry.action) {
    case "status":
      return str(d, "reason") ?? genericLine("status changed", d);
    case "registered": {
      const region = str(d, "region");
      const zone = str(d, "zone");
      const where =
        region === undefined ? "" : ` in ${region}${zone === undefined ? "" : ` / ${zone}`}`;
      const gpus = gpusWords(d);
      return `Registered${str(d, "deviceId") === undefined ? "" : ` as device ${str(d, "deviceId")}`}${where}${
        gpus === undefined ? "" : `, ${gpus}`
      }`;
    }
    case "metadata":
      return metadataLine(d);
    case "flagged":
      return flaggedLine(d);
    case "lease-ended":
      return leaseEndedLine(d);
    case "stake-slashed":
      return `Stake ${str(d, "stakeId") ?? "position"} slashed ${str(d, "amount") ?? "?"} ${
        str(d, "currency") ?? "TDM"
      }${str(d, "clusterId") === undefined ? "" : ` for a lease of ${str(d, "clusterId")}`}`;
    default:
      return genericLine(entry.action, d);
  }
}

/** What a cluster's "Started" says while it has no start time: "not yet", or that it never will. */
export function notStartedWords(status: string): string {
  if (!ENDED.has(status)) return "not yet";
  return `never: it ${status === "completed" ? "ended" : status} before it started`;
}
