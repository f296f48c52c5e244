import { mkdir, rmdir } from "node:fs/promises";
import type { RankLimits } from "../protocol/hardware.ts";
import type { Utilization } from "../protocol/worker-messages.ts";
import type { NetworkCapability } from "../protocol/cluster-network.ts";
import {
  coordinatorUrlsOf,
  parseWorkerConfig,
  type WorkerConfig,
  type WorkerConfigInput,
} from "./config.ts";
import { CoordinatorLink } from "./connection.ts";
import { readCoordinatorCa } from "./coordinator-trust.ts";
import { startFenceWatchdog } from "./fencing/fence-watchdog.ts";
import { JobOutbox } from "./jobs/job-outbox.ts";
import { seedOf } from "../protocol/device-signing.ts";
import { loadOrCreateIdentity, saveIds } from "./identity.ts";
import { gpuFault } from "./probe/gpu-health.ts";
import { queryNvidiaSmi } from "./probe/nvidia-smi.ts";
import { DEFAULT_GPU_PROVER } from "./proof/gpu-helper.ts";
import { HardwareProver } from "./proof/hardware-prover.ts";
import { probeEngines } from "./probe/engines.ts";
import { systemHardwareProbe, type HardwareProbe } from "./probe/system-probe.ts";
import { registerThisDevice, registerWhenReachable } from "./registration.ts";
import { utilizationSampler } from "./utilization.ts";
import { prepareJobsDir } from "./jobs/jobs-dir.ts";
import { resealSecrets } from "./jobs/job-secrets.ts";
import { resolveOffer } from "./jobs/offer.ts";
import { JobSupervisor } from "./jobs/supervisor.ts";
import { setUpJobNetworks } from "./network/job-networks.ts";
import { createOverlay, probeWireguard } from "./network/wireguard-overlay.ts";
import { DEFAULT_OUTPUT_LIMITS } from "./jobs/rank-output.ts";
import type { JobRuntime } from "./runtime/job-runtime.ts";
import { createPodmanRuntime } from "./runtime/podman-runtime.ts";
import { selectRuntime } from "./runtime/select-runtime.ts";

export interface Worker {
  readonly deviceId: string;
  readonly nodeId: string;
  readonly link: CoordinatorLink;
  /** What each rank on this node may use at most (jobs/offer.ts), as reported to the coordinator. */
  readonly offer: RankLimits;
  /**
   * Asks the coordinator to drain this node (no new leases; ranks handed over or finished) and
   * resolves once it answers `drained`. The worker keeps serving meanwhile; `stop` it afterwards.
   */
  drain(reason: string): Promise<void>;
  stop(reason?: string): Promise<void>;
}

export type WorkerLog = (message: string, fields?: Record<string, unknown>) => void;

const NETWORKS_OFF: NetworkCapability = {
  isolation: false,
  overlay: null,
  problems: ["job networks are turned off on this worker"],
};

/**
 * Job networks (src/worker/network): the WireGuard probe, then the namespaces' set-up (a sweep of
 * what a previous run left, their own probe); overlays only where both work.
 */
async function setUpNetworks(config: WorkerConfig, log: WorkerLog) {
  const wireguard = await probeWireguard();
  const setup = await setUpJobNetworks({
    home: config.home,
    coordinatorUrls: coordinatorUrlsOf(config),
    overlay: {
      overlay: wireguard.kind,
      problems: wireguard.problem === null ? [] : [wireguard.problem],
    },
    log,
  });
  const kind = wireguard.kind;
  const overlays =
    setup.jobNetworks === undefined || kind === null
      ? undefined
      : {
          create: (jobNetns: PromiseLike<string>, rank: number) =>
            createOverlay({ jobNetns, rank, listenPorts: config.overlayPorts, kind }),
        };
  return { ...setup, overlays };
}

/**
 * The worker's composition root: identity → hardware probe → registration → coordinator link.
 * Resolves once registered; the link then connects and keeps reconnecting until `stop`.
 */
export async function startWorker(
  input: WorkerConfigInput,
  ports: { probe?: HardwareProbe; runtime?: JobRuntime; log?: WorkerLog } = {},
): Promise<Worker> {
  const config = parseWorkerConfig(input);
  const ca =
    config.coordinatorCaFile === undefined
      ? undefined
      : await readCoordinatorCa(config.coordinatorCaFile);
  const log: WorkerLog =
    ports.log ??
    ((message, fields) => console.error(JSON.stringify({ service: "worker", message, ...fields })));
  await mkdir(config.home, { recursive: true, mode: 0o700 });
  const workDir = await prepareJobsDir(config.home, config.jobsDir);

  const identity = await loadOrCreateIdentity(config.home);
  const runtime = ports.runtime ?? (await chooseRuntime(config.allowUnsandboxed, log));
  const containers = config.containers ? await chooseContainerRuntime(config.home, log) : undefined;
  const probe =
    ports.probe ??
    systemHardwareProbe({
      workDir,
      nvidiaSmi: config.nvidiaSmi,
      onWarning: (warning) => log("GPU probe warning", { warning }),
    });
  const probed = await probe.probe();
  // A probe port that names the engines (a test's) has the last word; else Python is asked once.
  const engines =
    probed.engines ??
    (await probeEngines({
      python: config.python,
      podman: containers !== undefined,
      onWarning: (warning) => log("engine probe warning", { warning }),
    }));
  log("engines", { engines });
  const networks = config.jobNetworks ? await setUpNetworks(config, log) : undefined;
  const offer = resolveOffer(config, probed);
  const hardware = {
    ...probed,
    ...(containers === undefined ? {} : { runtimes: ["podman" as const] }),
    engines,
    limits: offer,
    network: networks?.capability ?? NETWORKS_OFF,
  };
  log("registering", { coordinatorUrl: config.coordinatorUrl });
  // A worker started before its coordinator (a boot, a restart of both) waits for it.
  const registered = await registerWhenReachable(
    () =>
      registerThisDevice({
        coordinatorUrl: config.coordinatorUrl,
        ca,
        enrollmentToken: config.enrollmentToken,
        log,
        identity,
        region: config.region,
        zone: config.zone,
        hardware,
      }),
    log,
  );
  await saveIds(config.home, registered);
  log("registered", {
    deviceId: registered.deviceId,
    nodeId: registered.nodeId,
    gpus: hardware.gpus.length,
    offer,
  });

  let gpuLoad: Utilization["gpus"] = hardware.gpus.map((g) => ({
    index: g.index,
    utilizationPct: g.utilizationPct,
    temperatureC: g.temperatureC,
  }));
  let health: string | null = null;
  const gpuTimer =
    hardware.gpus.length === 0
      ? undefined
      : setInterval(() => {
          queryNvidiaSmi({ command: config.nvidiaSmi }).then(
            ({ gpus }) => {
              gpuLoad = gpus.map((g) => ({
                index: g.index,
                utilizationPct: g.utilizationPct,
                temperatureC: g.temperatureC,
              }));
              health = gpuFault(hardware.gpus, gpus);
            },
            (error: unknown) => {
              health = gpuFault(
                hardware.gpus,
                error instanceof Error ? error : new Error(String(error)),
              );
              log("GPU sample failed", { error: String(error) });
            },
          );
        }, config.gpuSampleIntervalMs);
  gpuTimer?.unref();

  // Fencing that does not need this process to run: a frozen agent's jobs end all the same.
  const watchdog = startFenceWatchdog(log);
  watchdog.onFenced((jobIds) =>
    log("fenced by the watchdog: the agent stopped renewing", { jobIds }),
  );
  const prover = new HardwareProver({
    gpu:
      config.gpuProver === undefined
        ? { command: DEFAULT_GPU_PROVER, isDefault: true }
        : { command: config.gpuProver, isDefault: false },
    log,
  });
  const link = new CoordinatorLink({
    prover,
    renewFence: (fenceInMs) => watchdog.renew(fenceInMs),
    coordinatorUrls: [config.coordinatorUrl, ...config.moreCoordinatorUrls],
    publicAddress: config.publicAddress,
    ca,
    identity: { ...identity, deviceId: registered.deviceId },
    backoff: { baseMs: config.reconnectBaseMs, maxMs: config.reconnectMaxMs },
    sampleUtilization: utilizationSampler(
      () => gpuLoad,
      () => health,
    ),
    log,
  });
  const outbox = new JobOutbox((message) => link.send(message));
  const secretKey = { seed: seedOf(identity.privateKey), nodeId: registered.nodeId };
  const supervisor = new JobSupervisor({
    runtime: watchdog.guard(runtime),
    containers: containers === undefined ? undefined : watchdog.guard(containers),
    jobsDir: workDir,
    python: config.python,
    gpuIndices: hardware.gpus.map((g) => g.index),
    secretKey,
    offer,
    output: {
      ...DEFAULT_OUTPUT_LIMITS,
      rateBytesPerSec: config.jobOutputBytesPerSec,
      burstBytes: config.jobOutputBurstBytes,
      totalBytes: config.jobOutputMaxBytes,
    },
    network: {
      jobNetworks: networks?.jobNetworks,
      overlays: networks?.overlays,
      localAddress: () => config.publicAddress ?? link.localAddress,
    },
    send: (message) => outbox.post(message),
    log,
  });
  link.on("job", (message) => {
    if (message.type === "job-stop") void supervisor.stop(message.clusterId);
    else if (outbox.hasEnded(message))
      log("job-start for a run that already ended here ignored", {
        clusterId: message.clusterId,
        attempt: message.attempt,
      });
    else void supervisor.start(message);
  });
  link.on("peers", (message) => void supervisor.setPeers(message));
  link.on("exit-acknowledged", (ack) => outbox.acknowledged(ack));
  link.on("reseal", (request) => {
    try {
      link.send(resealSecrets(request, secretKey));
    } catch (error) {
      log("secrets reseal refused", { clusterId: request.clusterId, error: String(error) });
    }
  });
  const exitRetryTimer = setInterval(() => outbox.resendOverdue(EXIT_RETRY_MS), EXIT_RETRY_MS);
  exitRetryTimer.unref();
  link.on("fence", ({ silentMs, heartbeatIntervalMs }) => {
    if (supervisor.activeClusters === 0) return;
    outbox.fence(`stopped by self-fencing: no contact with the coordinator for ${silentMs} ms`);
    // The coordinator declares this node no sooner than ¾ interval after the fence (a closed
    // link; silence: one interval), which is checked a quarter interval late at most: a quarter
    // interval of grace ends every process half an interval after the fence, as the watchdog does
    // (core/failure-detector.ts).
    void supervisor.stopAll({ graceMs: Math.floor(heartbeatIntervalMs / 4) }).then((stopped) => {
      if (stopped > 0)
        log(`fenced: no contact with the coordinator for ${silentMs} ms; stopped ${stopped} jobs`, {
          silentMs,
          stopped,
        });
    });
  });
  link.on("connected", ({ nodeId }) => {
    log("connected", { nodeId });
    // What the coordinator may have missed while the link (or the coordinator) was down.
    outbox.resend();
  });
  link.on("revoked", () => log("this device was revoked by the network; stopping"));
  link.start();

  return {
    deviceId: registered.deviceId,
    nodeId: registered.nodeId,
    link,
    offer,
    async drain(reason) {
      const drained = new Promise<void>((resolve) => link.once("drained", resolve));
      log("draining: waiting for the coordinator to hand over this node's jobs", { reason });
      link.drain(reason);
      await drained;
      log("drained by the coordinator", { activeClusters: supervisor.activeClusters });
    },
    async stop(reason = "worker stopped") {
      clearInterval(gpuTimer);
      clearInterval(exitRetryTimer);
      await supervisor.stopAll();
      await watchdog.stop();
      await link.stop(reason);
      // The default jobs root is per worker home in the temp dir: leave none behind. A dir that
      // still holds something (a job dir whose removal failed) stays for the operator to see.
      if (config.jobsDir === undefined) await rmdir(workDir).catch(() => undefined);
    },
  };
}

/** How long an exit may go unacknowledged on a live link before it is sent again, ms. */
const EXIT_RETRY_MS = 15_000;

async function chooseContainerRuntime(
  home: string,
  log: WorkerLog,
): Promise<JobRuntime | undefined> {
  const podman = await createPodmanRuntime({ configDir: home, log });
  if ("runtime" in podman) {
    log("container runtime", { kind: "podman" });
    return podman.runtime;
  }
  log("no container runtime: container clusters cannot run here", { why: podman.unavailable });
  return undefined;
}

async function chooseRuntime(allowUnsandboxed: boolean, log: WorkerLog): Promise<JobRuntime> {
  const { runtime, warning } = await selectRuntime({ allowUnsandboxed, log });
  if (warning !== undefined) log(warning);
  log("job runtime", { kind: runtime.kind });
  return runtime;
}
