/**
 * The worker's side of the proof of hardware (DESIGN.md §5.2, src/core/hardware-proof.ts): on
 * `prove`, every device works at once — each CPU core-device in its own thread (cpu-prover.ts),
 * each GPU in its own helper process (gpu-helper.ts) — and one `prove-commit` answers them all,
 * a device that could not prove with its reason. What answers the opening (a core's product and
 * tree; a GPU's still-running helper) is kept for the `prove-open` that follows and dropped after
 * it, when a newer `prove` arrives, on disconnect, or `keepMs` after the commit.
 */
import os from "node:os";
import type { z } from "zod";
import type {
  ProveCommitMessage,
  ProveMessage,
  ProveOpenMessage,
  ProveRevealMessage,
} from "../../protocol/worker-messages.ts";
import { cpuWorkloadRefusal, proveOnCpu, type CpuDeviceProof } from "./cpu-prover.ts";
import { GpuHelperProcess, type GpuHelperOptions } from "./gpu-helper.ts";

type Prove = z.infer<typeof ProveMessage>;
type ProveOpen = z.infer<typeof ProveOpenMessage>;
type ProveCommit = z.infer<typeof ProveCommitMessage>;
type ProveReveal = z.infer<typeof ProveRevealMessage>;
type DeviceCommit = ProveCommit["devices"][number];
type RevealedCell = ProveReveal["cells"][number];

/** How the worker proves its devices. */
export interface HardwareProverOptions {
  /** The GPU prover helper (`--gpu-prover`) and its environment. */
  gpu: Omit<GpuHelperOptions, "timeoutMs">;
  /**
   * Longest a device may work on its commitment, and a GPU helper on its reveal, ms; past it the
   * device answers an error (default 120000: a proof is sized to take seconds).
   */
  deviceTimeoutMs?: number;
  /**
   * CPU cores of this machine (what its hardware report says): `cpu:0` … `cpu:<cores − 1>` can be
   * proven, one thread each. Default: `os.cpus()`, or `os.availableParallelism()` where hidden.
   */
  cores?: number;
  /** What answers an opening is dropped this long after the commit, ms (default 120000). */
  keepMs?: number;
  log?: (message: string, fields?: Record<string, unknown>) => void;
}

/** What one committed device keeps until the opening. */
type Kept = { kind: "cpu"; proof: CpuDeviceProof } | { kind: "gpu"; helper: GpuHelperProcess };

interface Proof {
  proofId: string;
  kept: Map<string, Kept>;
  /** Stops the work still running (threads, helpers). */
  cancels: (() => void)[];
  dropped: boolean;
  keepTimer?: NodeJS.Timeout;
}

const DEFAULT_TIMEOUT_MS = 120_000;

export class HardwareProver {
  private current: Proof | undefined;

  private readonly cores: number;

  constructor(private readonly options: HardwareProverOptions) {
    this.cores = options.cores ?? (os.cpus().length || os.availableParallelism());
  }

  /**
   * Proves every device of `message`. Undefined when the proof was dropped before it finished (a
   * newer one, a disconnect): there is nothing to send then.
   */
  async prove(message: Prove): Promise<ProveCommit | undefined> {
    this.drop();
    const proof: Proof = { proofId: message.proofId, kept: new Map(), cancels: [], dropped: false };
    this.current = proof;
    const seen = new Set<string>();
    const devices = await Promise.all(
      message.devices.map(async (device): Promise<DeviceCommit> => {
        if (seen.has(device.device)) return { device: device.device, error: "device listed twice" };
        seen.add(device.device);
        return device.kind === "cpu" ? this.proveCpu(proof, device) : this.proveGpu(proof, device);
      }),
    );
    if (proof.dropped) return undefined;
    proof.keepTimer = setTimeout(() => {
      if (this.current === proof) this.drop();
    }, this.options.keepMs ?? DEFAULT_TIMEOUT_MS);
    proof.keepTimer.unref();
    return { type: "prove-commit", proofId: message.proofId, devices };
  }

  /**
   * Reveals the opened cells of the current proof and drops it. A proofId that is not the current
   * one reveals nothing; a cell of a device that did not commit, or outside its product, is left
   * out.
   */
  async open(message: ProveOpen): Promise<ProveReveal> {
    const proof = this.current?.proofId === message.proofId ? this.current : undefined;
    if (proof === undefined) return { type: "prove-reveal", proofId: message.proofId, cells: [] };
    this.current = undefined;
    proof.dropped = true; // a device still working (an opening before the commit) ends there
    clearTimeout(proof.keepTimer);
    const byDevice = new Map<string, { row: number; col: number }[]>();
    for (const { device, row, col } of message.cells)
      byDevice.set(device, [...(byDevice.get(device) ?? []), { row, col }]);
    const revealed = await Promise.all(
      [...proof.kept].map(([device, kept]) =>
        this.revealDevice(device, kept, byDevice.get(device) ?? []),
      ),
    );
    return { type: "prove-reveal", proofId: message.proofId, cells: revealed.flat() };
  }

  /** Stops and forgets the current proof (a newer one is coming, or the link went down). */
  drop(): void {
    const proof = this.current;
    if (proof === undefined) return;
    this.current = undefined;
    proof.dropped = true;
    clearTimeout(proof.keepTimer);
    for (const cancel of proof.cancels) cancel();
    for (const kept of proof.kept.values()) if (kept.kind === "gpu") kept.helper.kill();
  }

  private async proveCpu(proof: Proof, device: Prove["devices"][number]): Promise<DeviceCommit> {
    const core = /^cpu:(0|[1-9]\d{0,5})$/.exec(device.device);
    if (core === null || Number(core[1]) >= this.cores)
      return {
        device: device.device,
        error: `no such CPU core here (this machine has ${this.cores})`,
      };
    const refusal = cpuWorkloadRefusal(device);
    if (refusal !== undefined) return { device: device.device, error: refusal };
    const run = proveOnCpu(device, this.timeoutMs);
    proof.cancels.push(() => run.cancel());
    const result = await run.done;
    if (!result.ok) return { device: device.device, error: result.error };
    proof.kept.set(device.device, { kind: "cpu", proof: result.proof });
    return {
      device: device.device,
      root: result.proof.root,
      computeMs: result.proof.computeMs,
      allocatedMiB: result.proof.allocatedMiB,
    };
  }

  private async proveGpu(proof: Proof, device: Prove["devices"][number]): Promise<DeviceCommit> {
    const { seed, n, k, fillMiB } = device;
    const helper = GpuHelperProcess.start(
      { ...this.options.gpu, timeoutMs: this.timeoutMs },
      { prove: { device: device.device, seed, n, k, fillMiB } },
    );
    proof.cancels.push(() => helper.kill());
    const commit = await helper.commit();
    if (proof.dropped) {
      helper.kill();
      return { device: device.device, error: "proof dropped" };
    }
    if (!commit.ok) {
      this.options.log?.("GPU proof failed", { device: device.device, error: commit.error });
      return { device: device.device, error: commit.error };
    }
    proof.kept.set(device.device, { kind: "gpu", helper });
    const { root, computeMs, allocatedMiB } = commit;
    return { device: device.device, root, computeMs, allocatedMiB };
  }

  private async revealDevice(
    device: string,
    kept: Kept,
    cells: { row: number; col: number }[],
  ): Promise<RevealedCell[]> {
    if (kept.kind === "cpu") return kept.proof.reveal(cells).map((cell) => ({ device, ...cell }));
    if (cells.length === 0) {
      kept.helper.close();
      return [];
    }
    const revealed = await kept.helper.reveal(cells);
    if (!revealed.ok) {
      this.options.log?.("GPU reveal failed", { device, error: revealed.error });
      return [];
    }
    const asked = new Set(cells.map(({ row, col }) => `${row},${col}`));
    return revealed.cells
      .filter(({ row, col }) => asked.has(`${row},${col}`))
      .map((cell) => ({ device, ...cell }));
  }

  private get timeoutMs(): number {
    return this.options.deviceTimeoutMs ?? DEFAULT_TIMEOUT_MS;
  }
}
