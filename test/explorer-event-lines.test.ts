/**
 * The explorer's event lines (web/src/event-lines.ts): each cluster event type the coordinator
 * writes, with the detail its owner sees and with the little the public API leaves of it, and
 * each node history action, reads as one line of words: what, which rank and node, why, how long.
 * An unknown type reads as words too, never as JSON.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import {
  clusterEndReason,
  clusterEventLine,
  formatDurationMs,
  historyLine,
  notStartedWords,
} from "../web/src/event-lines.ts";

const A = "node_01aaaaaaaaaaaaaaaaaaaaaaaa";
const B = "node_01bbbbbbbbbbbbbbbbbbbbbbbb";

/** Every event type the coordinator writes, with the detail it writes (as of issue 20). */
const OWNER_EVENTS: Array<[string, Record<string, unknown>, string]> = [
  [
    "reserved",
    {
      nodes: [
        { rank: 0, nodeId: A, zone: "eu-west-a" },
        { role: "standby", nodeId: B, zone: "eu-west-b" },
      ],
      reservationTtlMs: 30_000,
    },
    `Reserved 2 nodes: rank 0 on ${A} (eu-west-a), standby on ${B} (eu-west-b); each must start within 30.0 s`,
  ],
  ["secrets-pending", { names: ["HF_TOKEN", "WANDB"] }, "Waiting for the secrets HF_TOKEN, WANDB"],
  ["secrets-sealed", { names: ["HF_TOKEN"], nodes: 2 }, "Secrets HF_TOKEN sealed to 2 nodes"],
  ["secrets-resealed", { fromNodeId: A, toNodeId: B }, `Secrets resealed by ${A} to ${B}`],
  [
    "overlay-joined",
    { rank: 1, attempt: 1, nodeId: B, behindNat: true },
    `Rank 1 on ${B} joined the cluster network (behind NAT, relayed)`,
  ],
  [
    "head-ready",
    { nodeId: A, attempt: 1, address: "10.7.0.1", port: 29500 },
    `Head ready on ${A} at 10.7.0.1:29500`,
  ],
  ["running", { provisioningMs: 3420 }, "Running, 3.4 s after the deploy"],
  ["extended", { hours: 2, totalHours: 5 }, "Extended by 2 h, 5 h paid in all"],
  [
    "rank-exited",
    {
      rank: 0,
      attempt: 1,
      exitCode: 3,
      signal: null,
      cause: "consumer",
      end: "exit-nonzero",
    },
    "Rank 0 exited: exit code 3: the job failed (the job's own doing, no slash)",
  ],
  [
    "rank-exited",
    {
      rank: 2,
      attempt: 1,
      exitCode: null,
      signal: "SIGKILL",
      limitExceeded: "memory",
      cause: "consumer",
      end: "limit-exceeded",
    },
    "Rank 2 exited: killed by SIGKILL, memory limit exceeded: the job went past a limit (the job's own doing, no slash)",
  ],
  [
    "task-ended",
    { task: 7, rank: 1, exitCode: 0, signal: null, cause: "consumer", end: "finished" },
    "Task 7 on rank 1 ended: exit code 0",
  ],
  [
    "scaled-up",
    { from: 1, to: 3, nodes: [A, B], reason: "5 queued + 1 running tasks at 2 per node → 3 nodes" },
    `Scaled up from 1 to 3 nodes (added ${A}, ${B}): 5 queued + 1 running tasks at 2 per node → 3 nodes`,
  ],
  [
    "scaled-down",
    { from: 3, to: 1, nodes: [B], reason: "no queued task and idle for 30 s" },
    `Scaled down from 3 to 1 nodes (released ${B}): no queued task and idle for 30 s`,
  ],
  [
    "slashed",
    {
      nodeId: A,
      rank: 0,
      owed: "1.990000",
      taken: "1.000000",
      shortfall: "0.990000",
      cause: "supplier",
      end: "node-offline",
    },
    `${A} slashed 1.000000 of 1.990000 owed to the owner for rank 0, 0.990000 could not be taken: the node went offline (the node's fault)`,
  ],
  [
    "slashed",
    {
      nodeId: A,
      rank: 0,
      owed: "1.990000",
      taken: "1.990000",
      fromStake: "1.500000",
      fromEarnings: "0.490000",
      shortfall: "0.000000",
      cause: "supplier",
      end: "node-offline",
    },
    `${A} slashed 1.990000 (1.500000 from its stake) to the owner for rank 0: the node went offline (the node's fault)`,
  ],
  [
    "node-lost",
    {
      nodeId: A,
      rank: 1,
      reason: "missed 3 heartbeats",
      cause: "supplier",
      end: "node-offline",
      task: 4,
    },
    `${A} lost (rank 1): missed 3 heartbeats; task 4 goes back to the queue (the node's fault)`,
  ],
  [
    "standby-lost",
    { nodeId: B, reason: "missed 3 heartbeats", cause: "supplier", end: "node-offline" },
    `Standby ${B} lost: missed 3 heartbeats (the node's fault)`,
  ],
  [
    "rank-lost",
    { nodeId: A, rank: 0, reason: "missed 3 heartbeats", cause: "supplier", end: "node-offline" },
    `Rank 0 lost with ${A}: missed 3 heartbeats; no standby or replacement took it`,
  ],
  [
    "failover",
    {
      rank: 0,
      fromNodeId: A,
      toNodeId: B,
      via: "standby",
      reason: "missed 3 heartbeats",
      cause: "supplier",
      end: "node-offline",
      restart: "all",
      attempt: 2,
      detectedAt: "2026-12-07T12:00:06.100Z",
      lastSeenAt: "2026-12-07T12:00:00.000Z",
    },
    `Rank 0 moved from ${A} to standby ${B} (missed 3 heartbeats; the node's fault; noticed 6.1 s after its last heartbeat; every rank restarts)`,
  ],
  [
    "takeover",
    { rank: 0, nodeId: B, fromNodeId: A, attempt: 2, takeoverMs: 85, sinceLastSeenMs: 4210 },
    `Rank 0 running again on ${B} (taken over from ${A}), 85 ms after the failure was noticed, 4.2 s after the lost node's last heartbeat`,
  ],
  ["completed", { reason: "every rank finished" }, "Completed: every rank finished"],
  ["failed", { reason: "rank 0 failed" }, "Failed: rank 0 failed"],
  ["terminated", { reason: "terminated by its owner" }, "Terminated: terminated by its owner"],
  ["expired", { reason: "paid time is over" }, "Expired: paid time is over"],
];

/** What the public sees of the same events (PUBLIC_CLUSTER_EVENTS keeps only these fields). */
const PUBLIC_EVENTS: Array<[string, Record<string, unknown>, string]> = [
  ["reserved", {}, "Nodes reserved"],
  ["running", { provisioningMs: 61_500 }, "Running, 1 min 2 s after the deploy"],
  [
    "failover",
    { rank: 1, fromNodeId: A, toNodeId: B, via: "replacement" },
    `Rank 1 moved from ${A} to ${B}`,
  ],
  [
    "takeover",
    { rank: 1, nodeId: B, fromNodeId: A, takeoverMs: 1200 },
    `Rank 1 running again on ${B} (taken over from ${A}), 1.2 s after the failure was noticed`,
  ],
  ["scaled-up", { from: 1, to: 2 }, "Scaled up from 1 to 2 nodes"],
  ["node-lost", { nodeId: A, rank: 0 }, `${A} lost (rank 0)`],
  ["failed", {}, "Failed"],
  ["completed", {}, "Completed"],
];

describe("cluster event lines", () => {
  for (const [type, detail, line] of [...OWNER_EVENTS, ...PUBLIC_EVENTS])
    it(`${type} ${Object.keys(detail).length === 0 ? "(no detail)" : `(${Object.keys(detail).length} fields)`}`, () => {
      assert.equal(clusterEventLine({ type, detail }), line);
    });

  it("reads an unknown type and nested values as words, never JSON", () => {
    const line = clusterEventLine({
      type: "quota-changed",
      detail: {
        reason: "the owner asked",
        maxNodes: 4,
        limits: { memoryMiB: 4096 },
        zones: ["a", "b"],
        tee: false,
        note: null,
      },
    });
    assert.equal(
      line,
      "Quota changed: the owner asked; max nodes 4, limits (memory MiB 4096), zones a, b, tee no, note none",
    );
    assert.doesNotMatch(line, /[{}"]/);
    assert.equal(clusterEventLine({ type: "warmed", detail: {} }), "Warmed");
  });

  it("never writes JSON, whatever the detail holds", () => {
    const odd: Record<string, unknown> = {
      nodes: [{ x: { y: [1, { z: "w" }] } }],
      rank: "0",
      exitCode: "3",
    };
    for (const [type] of OWNER_EVENTS)
      assert.doesNotMatch(clusterEventLine({ type, detail: odd }), /\{"|"\}/);
  });

  it("says why a cluster ended, with the exit that failed it", () => {
    const events = [
      { type: "running", detail: { provisioningMs: 900 } },
      OWNER_EVENTS.find(([t, d]) => t === "rank-exited" && d.exitCode === 3)!,
      { type: "failed", detail: { reason: "rank 0 failed" } },
    ].map((e) => (Array.isArray(e) ? { type: e[0], detail: e[1] } : e));
    assert.equal(
      clusterEndReason("failed", events),
      "rank 0 failed: exit code 3 (the job's own doing, no slash)",
    );
    assert.equal(
      clusterEndReason("terminated", [{ type: "terminated", detail: { reason: "by its owner" } }]),
      "by its owner",
    );
    assert.equal(
      clusterEndReason("expired", [{ type: "expired", detail: {} }]),
      "no reason recorded",
    );
    assert.equal(clusterEndReason("running", events), undefined);
  });

  it("says a cluster that ended before it started never will, not that it has not yet", () => {
    assert.deepEqual(
      ["pending", "provisioning", "failed", "terminated", "expired", "completed"].map(
        notStartedWords,
      ),
      [
        "not yet",
        "not yet",
        "never: it failed before it started",
        "never: it terminated before it started",
        "never: it expired before it started",
        "never: it ended before it started",
      ],
    );
  });

  it("writes durations people read", () => {
    assert.deepEqual(
      [0, 850, 1000, 59_949, 60_000, 125_000, 3_600_000, 4_830_000].map(formatDurationMs),
      ["0 ms", "850 ms", "1.0 s", "59.9 s", "1 min", "2 min 5 s", "1 h", "1 h 21 min"],
    );
  });
});

describe("node history lines", () => {
  const cases: Array<[string, Record<string, unknown>, string]> = [
    ["status", { reason: "missed 3 heartbeats" }, "missed 3 heartbeats"],
    [
      "registered",
      { deviceId: "dev_01", region: "eu-west", zone: "eu-west-a", gpus: 8, gpuModel: "h100-80gb" },
      "Registered as device dev_01 in eu-west / eu-west-a, 8 × h100-80gb",
    ],
    [
      "registered",
      { deviceId: "dev_02", region: "us-east", zone: "us-east-1", gpus: 0, gpuModel: null },
      "Registered as device dev_02 in us-east / us-east-1, CPU only",
    ],
    [
      "metadata",
      { changed: ["price"], pricePerHour: "0.500000", currency: "USD", previous: null },
      "Price set to 0.500000 USD/h (was the catalog price)",
    ],
    [
      "metadata",
      {
        changed: ["gpuModel"],
        reportedModel: "rtx-3080",
        provenModel: "rtx-3060-ti",
        vramMiB: 8192,
      },
      "Rented as rtx-3060-ti, the model it proved (reported rtx-3080, 8192 MiB VRAM)",
    ],
    [
      "metadata",
      { changed: ["hardware", "region"], unverified: "hardware changed" },
      "Hardware, region changed; must prove itself again: hardware changed",
    ],
    [
      "flagged",
      { flag: "duplicate-gpu-uuid", uuids: ["GPU-1f2e", "GPU-3a4b"] },
      "Flagged duplicate-gpu-uuid: GPU-1f2e, GPU-3a4b also reported by another device; never placed while flagged",
    ],
    [
      "flagged",
      { flag: "proof-too-fast", proofId: "prf_01" },
      "Flagged proof-too-fast (proof id prf_01); never placed while flagged",
    ],
    [
      "lease-ended",
      {
        clusterId: "clu_01",
        seq: 1,
        outcome: "lost",
        cause: "supplier",
        end: "node-offline",
        reason: "missed 3 heartbeats",
        slashed: "1.990000",
        currency: "USDC",
      },
      "Lease on clu_01 lost: missed 3 heartbeats (the node's fault); slashed 1.990000 USDC",
    ],
    [
      "lease-ended",
      {
        clusterId: "clu_02",
        seq: 2,
        outcome: "completed",
        cause: "consumer",
        end: "cluster-ended",
        reason: "cluster terminated: terminated by its owner",
        slashed: null,
        currency: "USDC",
      },
      "Lease on clu_02 completed: cluster terminated: terminated by its owner (the job's own doing, no slash)",
    ],
    [
      "verification-failed",
      { reason: "digest mismatch", device: "GPU-1f2e" },
      "Verification failed: digest mismatch; device GPU-1f2e",
    ],
    [
      "stake-added",
      { amount: "10.000000", currency: "TDM" },
      "Stake added: amount 10.000000, currency TDM",
    ],
    [
      "stake-slashed",
      {
        stakeId: "stk_01",
        amount: "0.040000",
        currency: "TDM",
        clusterId: "clu_03",
        leaseId: "clu_03/0",
      },
      "Stake stk_01 slashed 0.040000 TDM for a lease of clu_03",
    ],
  ];
  for (const [action, detail, line] of cases)
    it(`${action}: ${line.slice(0, 40)}`, () => {
      assert.equal(historyLine({ action, detail }), line);
      assert.doesNotMatch(line, /\{"/);
    });
});
