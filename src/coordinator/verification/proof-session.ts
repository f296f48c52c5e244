/**
 * One node's proof of hardware (src/core/hardware-proof.ts, DESIGN.md §5.2) as a small state
 * machine:
 *
 *   sent ──prove-commit──▶ committed ──prove-reveal──▶ judged
 *     │                        │
 *     └─ deadline / anything off ─┴──────────────────▶ judged (failed)
 *
 * Built from the node's hardware report: one device per GPU (by UUID, claimed model from its
 * nvidia-smi name), or one per CPU core of a CPU-only node ("cpu:0", …), each with its own workload
 * and fresh seed. On the commitment the coordinator notes its own elapsed time (prove sent → commit
 * received, the injected clock) and opens `openedCells` random cells per GPU, and as many across
 * a CPU node's cores (openCells); on the reveal it checks each cell (the leaf holds it, the leaf
 * hashes along its path to the committed root, the value is the product's) and judges each device's timing against its claim. A GPU too slow for
 * its claim may still prove as a lower catalog model (the node is then rented as that); one faster
 * than its claim can be is `too-fast` (the node gets flagged). A CPU core has no catalog ceiling:
 * only a lower bound applies to it (cores differ widely; `cpuCoreGflops` is a reference rate).
 *
 * Every deviation — another proof's id, a second commitment, a device list other than the one
 * asked, a device error, a wrong cell, an answer after its deadline — ends the proof failed with a
 * per-device verdict; nothing here throws on a worker's input.
 */
import { randomBytes, randomInt } from "node:crypto";
import type { Clock } from "../../core/clock.ts";
import { GPU_CATALOG, gpuModelByName, type GpuModel } from "../../core/gpu-catalog.ts";
import {
  cpuWorkload,
  gpuWorkload,
  judgeTiming,
  peakFlopsPerMs,
  proofDeadlineMs,
  provenGpuModel,
  type ProofPolicy,
} from "../../core/hardware-proof.ts";
import type { HardwareReport } from "../../protocol/hardware.ts";
import type {
  ProveCommitMessage,
  ProveMessage,
  ProveOpenMessage,
  ProveRevealMessage,
} from "../../protocol/worker-messages.ts";
import type { z } from "zod";
import { checkOpenedCells, type OpenedCell } from "./proof-cells.ts";

/** Flag set on a node whose device reported more speed than its claimed model can have. */
export const TOO_FAST_FLAG = "proof-too-fast";

export type DeviceVerdict =
  | "passed"
  | "too-slow"
  | "too-fast"
  | "inconsistent"
  | "wrong-result"
  | "late"
  | "missing"
  | "device-error"
  | "unknown-model";

/** One device's line of a proof record (public: the node's history shows it). */
export interface DeviceRecord {
  device: string;
  kind: "gpu" | "cpu";
  claimedModel: string | null;
  provenModel: string | null;
  n: number;
  k: number;
  fillMiB: number;
  computeMs: number | null;
  elapsedMs: number | null;
  tflops: number | null;
  verdict: DeviceVerdict;
  detail: string;
}

/** The `detail` of a `verification-passed` / `verification-failed` history row. */
export interface ProofRecord {
  proofId: string;
  reason: string;
  devices: DeviceRecord[];
}

export interface ProofOutcome {
  passed: boolean;
  record: ProofRecord;
  /** Passed GPU node: the catalog model it proved as (its slowest GPU's). */
  provenModel?: GpuModel;
  /** A device was faster than its claim can be: the node is flagged {@link TOO_FAST_FLAG}. */
  tooFast: boolean;
}

/**
 * The cells to open: `count` on each GPU (each is rented on its own), and `count` in all across a
 * CPU node's cores, each on a core drawn at random (the cores are one machine: a worker that
 * skipped a fraction f of its cores' work passes with (1 − f)^count, as a GPU that skipped a
 * fraction of its own; per core, a 64-core node cost the coordinator 45 ms a check).
 */
function openCells(
  devices: readonly Pick<Device, "device" | "kind" | "n">[],
  count: number,
): Array<{ device: string; row: number; col: number }> {
  const cell = (d: Pick<Device, "device" | "n">) => ({
    device: d.device,
    row: randomInt(0, d.n),
    col: randomInt(0, d.n),
  });
  const gpus = devices.filter((d) => d.kind === "gpu");
  const cores = devices.filter((d) => d.kind === "cpu");
  return [
    ...gpus.flatMap((d) => Array.from({ length: count }, () => cell(d))),
    ...(cores.length === 0
      ? []
      : Array.from({ length: count }, () => cell(cores[randomInt(0, cores.length)]!))),
  ];
}

/**
 * Cores proven at most on a CPU-only node (a `prove` names at most 256 devices; a node is priced
 * per node, not per core, and 128 cores keep a proof's commitment small).
 */
export const MAX_CPU_DEVICES = 128;

type Commit = z.infer<typeof ProveCommitMessage>["devices"][number];

interface Device {
  readonly device: string;
  readonly kind: "gpu" | "cpu";
  /** The claimed model (GPU); undefined for a CPU core. */
  readonly claimed: GpuModel | undefined;
  readonly seed: number;
  readonly n: number;
  readonly k: number;
  readonly fillMiB: number;
  readonly peak: number;
  record: DeviceRecord;
  root?: Uint8Array;
  /** The worker's own measure, unrounded. */
  computeMs?: number;
}

type State = "sent" | "committed" | "judged";

export class ProofSession {
  readonly proofId = randomBytes(12).toString("base64url");
  private state: State = "sent";
  private readonly sentAtMs: number;
  private openedAtMs = 0;
  private elapsedMs = 0;
  private opened: OpenedCell[] = [];
  /** Problems of the proof as a whole (another proof's id, devices not asked for). */
  private readonly problems: string[] = [];

  private constructor(
    private readonly clock: Clock,
    private readonly policy: ProofPolicy,
    private readonly devices: Device[],
  ) {
    this.sentAtMs = clock.now();
  }

  /**
   * A proof of every device `hardware` reports, or at once a failed outcome when a GPU's model is
   * not in the catalog (nothing to size or judge it by). Call {@link begin} right after.
   */
  static start(
    hardware: HardwareReport,
    policy: ProofPolicy,
    clock: Clock,
  ): { session: ProofSession } | { outcome: ProofOutcome } {
    const devices: Device[] = [];
    const unknown: string[] = [];
    for (const gpu of hardware.gpus) {
      const claimed = gpuModelByName(gpu.name);
      if (claimed === undefined) unknown.push(gpu.uuid);
      const w =
        claimed === undefined
          ? { seed: 0, n: 0, k: 0, fillMiB: 0 }
          : gpuWorkload(claimed, policy, freshSeed());
      devices.push(
        device(
          gpu.uuid,
          "gpu",
          claimed,
          w,
          claimed === undefined ? 0 : peakFlopsPerMs(claimed, policy),
        ),
      );
      if (claimed === undefined)
        setVerdict(devices.at(-1)!, "unknown-model", `"${gpu.name}" is not in the GPU catalog`);
    }
    if (hardware.gpus.length === 0)
      for (let i = 0; i < Math.min(hardware.cpu.cores, MAX_CPU_DEVICES); i++)
        devices.push(
          device(
            `cpu:${i}`,
            "cpu",
            undefined,
            { ...cpuWorkload(policy, freshSeed()), fillMiB: 0 },
            peakFlopsPerMs(undefined, policy),
          ),
        );
    const session = new ProofSession(clock, policy, devices);
    if (unknown.length === 0) return { session };
    for (const d of devices)
      if (d.record.verdict === "passed")
        setVerdict(d, "missing", "not proven: another GPU of the node is not in the catalog");
    return { outcome: session.judge(`GPU model not in the catalog: ${unknown.join(", ")}`) };
  }

  /** The `prove` message: every device's workload. */
  begin(): z.infer<typeof ProveMessage> {
    return {
      type: "prove",
      proofId: this.proofId,
      devices: this.devices.map((d) => ({
        device: d.device,
        kind: d.kind,
        seed: d.seed,
        n: d.n,
        k: d.k,
        fillMiB: d.fillMiB,
      })),
    };
  }

  /** How long after `prove` the commitment may come, ms: the slowest device's deadline. */
  get commitDeadlineMs(): number {
    return Math.max(...this.devices.map((d) => proofDeadlineMs(d, d.peak, this.policy)));
  }

  /** How long after `prove-open` the reveal may come, ms. */
  get revealDeadlineMs(): number {
    return this.policy.overheadMs;
  }

  get judged(): boolean {
    return this.state === "judged";
  }

  onCommit(
    message: z.infer<typeof ProveCommitMessage>,
  ): z.infer<typeof ProveOpenMessage> | ProofOutcome {
    if (this.state !== "sent") return this.failAll("inconsistent", "a second commitment");
    if (message.proofId !== this.proofId)
      return this.failAll("inconsistent", `a commitment for another proof (${message.proofId})`);
    this.elapsedMs = this.clock.now() - this.sentAtMs;
    if (this.elapsedMs > this.commitDeadlineMs)
      return this.failAll(
        "late",
        `committed after ${round1(this.elapsedMs)} ms, past its ${this.commitDeadlineMs} ms deadline`,
      );
    const byDevice = new Map(this.devices.map((d) => [d.device, d]));
    const answered = new Set<string>();
    for (const entry of message.devices) {
      const d = byDevice.get(entry.device);
      if (d === undefined || answered.has(entry.device)) {
        this.problems.push(
          d === undefined
            ? `answered for ${entry.device}, not asked`
            : `answered twice for ${entry.device}`,
        );
        continue;
      }
      answered.add(entry.device);
      this.acceptCommit(d, entry);
    }
    for (const d of this.devices)
      if (!answered.has(d.device)) setVerdict(d, "missing", "no commitment for this device");
    this.opened = openCells(
      this.devices.filter((d) => d.root !== undefined),
      this.policy.openedCells,
    );
    if (this.opened.length === 0) return this.judge();
    this.state = "committed";
    this.openedAtMs = this.clock.now();
    return { type: "prove-open", proofId: this.proofId, cells: this.opened };
  }

  onReveal(message: z.infer<typeof ProveRevealMessage>): ProofOutcome {
    if (this.state !== "committed")
      return this.failAll("inconsistent", "a reveal before the commitment");
    if (message.proofId !== this.proofId)
      return this.failAll("inconsistent", `a reveal for another proof (${message.proofId})`);
    const waitedMs = this.clock.now() - this.openedAtMs;
    if (waitedMs > this.revealDeadlineMs)
      return this.failAll(
        "late",
        `revealed ${round1(waitedMs)} ms after the opening, past its ${this.revealDeadlineMs} ms deadline`,
      );
    const byDevice = new Map(this.devices.map((d) => [d.device, d]));
    const wrong = checkOpenedCells(this.opened, message.cells, (name) => {
      const d = byDevice.get(name)!;
      return { seed: d.seed, n: d.n, k: d.k, root: d.root! };
    });
    for (const [name, detail] of wrong) setVerdict(byDevice.get(name)!, "wrong-result", detail);
    for (const d of this.devices)
      if (d.root !== undefined && !wrong.has(d.device)) this.judgeTiming(d);
    return this.judge();
  }

  /** The deadline passed with no commitment (or no reveal): failed `late`. */
  expire(): ProofOutcome {
    const waiting = this.state === "sent" ? "commitment" : "reveal";
    const deadline = this.state === "sent" ? this.commitDeadlineMs : this.revealDeadlineMs;
    return this.failAll("late", `no ${waiting} within its ${deadline} ms deadline`);
  }

  private bandOf(d: Device): Pick<ProofPolicy, "minFraction" | "maxFraction"> {
    return d.kind === "cpu" ? { ...this.policy, maxFraction: Infinity } : this.policy;
  }

  private acceptCommit(d: Device, entry: Commit): void {
    if ("error" in entry) {
      setVerdict(d, "device-error", entry.error);
      return;
    }
    d.root = Buffer.from(entry.root, "base64url");
    d.computeMs = entry.computeMs;
    d.record.computeMs = round1(entry.computeMs);
    d.record.elapsedMs = round1(this.elapsedMs);
    if (d.kind === "gpu" && entry.allocatedMiB < d.fillMiB)
      d.record.detail = `held ${entry.allocatedMiB} MiB of the ${d.fillMiB} MiB asked`;
  }

  private judgeTiming(d: Device): void {
    const band = this.bandOf(d);
    const timing = judgeTiming(d, d.peak, d.computeMs ?? 0, this.elapsedMs, {
      ...this.policy,
      ...band,
    });
    d.record.tflops = Number(timing.tflops.toPrecision(4));
    if (timing.ok) {
      d.record.provenModel = d.claimed?.id ?? null;
      return;
    }
    const proven =
      timing.reason === "too-slow" && d.claimed !== undefined
        ? provenGpuModel(d.claimed, timing.tflops, GPU_CATALOG, band)
        : undefined;
    if (proven === undefined) {
      setVerdict(d, timing.reason, timing.detail);
      return;
    }
    d.record.provenModel = proven.id;
    d.record.detail = `proven as ${proven.id}, not the claimed ${d.claimed!.id}: ${timing.detail}`;
  }

  private failAll(verdict: DeviceVerdict, detail: string): ProofOutcome {
    for (const d of this.devices) if (d.record.verdict === "passed") setVerdict(d, verdict, detail);
    return this.judge(detail);
  }

  private judge(problem?: string): ProofOutcome {
    this.state = "judged";
    if (problem !== undefined) this.problems.unshift(problem);
    const records = this.devices.map((d) => d.record);
    const failed = records.filter((r) => r.verdict !== "passed");
    const tooFast = records.some((r) => r.verdict === "too-fast");
    const record = (reason: string): ProofRecord => ({
      proofId: this.proofId,
      reason,
      devices: records,
    });
    if (this.problems.length > 0 || failed.length > 0) {
      // A problem of the whole proof says it all; otherwise each failed device's verdict.
      const reasons =
        this.problems.length > 0
          ? this.problems
          : failed.map((r) => `${r.device} ${r.verdict}: ${r.detail}`);
      const more = reasons.length > 1 ? ` (and ${reasons.length - 1} more)` : "";
      return { passed: false, record: record(`${reasons[0]}${more}`), tooFast };
    }
    const gpus = this.devices.filter((d) => d.kind === "gpu");
    if (gpus.length === 0)
      return { passed: true, record: record(`proven as ${records.length} CPU cores`), tooFast };
    const provenModel = gpus
      .map((d) => GPU_CATALOG.find((m) => m.id === d.record.provenModel)!)
      .sort((a, b) => a.tensorTflops - b.tensorTflops)[0]!;
    const claimed = [...new Set(gpus.map((d) => d.claimed!.id))];
    const as = `proven as ${provenModel.id} ×${gpus.length}`;
    const reason =
      claimed.length === 1 && claimed[0] === provenModel.id
        ? as
        : `${as} (claimed ${claimed.join(", ")})`;
    return { passed: true, record: record(reason), provenModel, tooFast };
  }
}

function freshSeed(): number {
  return randomInt(0, 2 ** 32 - 1);
}

function device(
  name: string,
  kind: "gpu" | "cpu",
  claimed: GpuModel | undefined,
  w: { seed: number; n: number; k: number; fillMiB: number },
  peak: number,
): Device {
  return {
    device: name,
    kind,
    claimed,
    ...w,
    peak,
    record: {
      device: name,
      kind,
      claimedModel: claimed?.id ?? null,
      provenModel: null,
      n: w.n,
      k: w.k,
      fillMiB: w.fillMiB,
      computeMs: null,
      elapsedMs: null,
      tflops: null,
      verdict: "passed",
      detail: "",
    },
  };
}

function setVerdict(d: Device, verdict: DeviceVerdict, detail: string): void {
  d.record.verdict = verdict;
  d.record.detail = detail;
  d.record.provenModel = null;
}

function round1(ms: number): number {
  return Math.round(ms * 10) / 10;
}
