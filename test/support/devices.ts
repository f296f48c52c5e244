/**
 * Devices for coordinator tests: hardware reports from the fixture `nvidia-smi` scripts (real
 * cards' output), Ed25519 device keys, signed registrations, and a raw worker WebSocket that does
 * only what the test tells it to (authenticate, beat, stay silent, send garbage).
 */
import { generateKeyPairSync, type KeyObject } from "node:crypto";
import { fileURLToPath } from "node:url";
import WebSocket from "ws";
import {
  connectPayload,
  publicKeyOf,
  registrationPayload,
  signPayload,
} from "../../src/protocol/device-signing.ts";
import type { DeviceRegistration, RegisterDeviceRequest } from "../../src/protocol/devices.ts";
import type { GpuReport, HardwareReport } from "../../src/protocol/hardware.ts";
import { CoordinatorMessage } from "../../src/protocol/worker-messages.ts";
import { queryNvidiaSmi } from "../../src/worker/probe/nvidia-smi.ts";

export type GpuFixture = "h100x8" | "rtx4090" | "rtx3060ti" | "none";

const FIXTURES = fileURLToPath(new URL("../fixtures/nvidia-smi/", import.meta.url));

/** The GPUs a fixture `nvidia-smi` reports, parsed by the worker's own parser. */
export async function fixtureGpus(fixture: GpuFixture): Promise<GpuReport[]> {
  const { gpus } = await queryNvidiaSmi({ command: `${FIXTURES}${fixture}/nvidia-smi` });
  return gpus;
}

/** A plausible machine around `gpus`. */
export function hardwareWith(
  gpus: GpuReport[],
  overrides: Partial<HardwareReport> = {},
): HardwareReport {
  return {
    cpu: { model: "AMD EPYC 7763 64-Core Processor", cores: 64, arch: "x64" },
    memoryTotalMiB: 515_000,
    diskFreeMiB: 1_800_000,
    os: { platform: "linux", release: "6.1.0-18-amd64", distro: "Debian GNU/Linux 12 (bookworm)" },
    gpus,
    ...overrides,
  };
}

/** A fixture machine's full hardware report. */
export async function fixtureHardware(fixture: GpuFixture): Promise<HardwareReport> {
  return hardwareWith(await fixtureGpus(fixture));
}

export interface TestDevice {
  readonly privateKey: KeyObject;
  readonly publicKey: string;
}

export function newDeviceKey(): TestDevice {
  const { privateKey } = generateKeyPairSync("ed25519");
  return { privateKey, publicKey: publicKeyOf(privateKey) };
}

/** A registration request signed by `device` (or by `signer`, to forge one). */
export function signedRegistration(
  device: TestDevice,
  fields: Omit<DeviceRegistration, "publicKey">,
  signer: KeyObject = device.privateKey,
): RegisterDeviceRequest {
  const registration: DeviceRegistration = { publicKey: device.publicKey, ...fields };
  return { ...registration, signature: signPayload(signer, registrationPayload(registration)) };
}

export interface WorkerSocket {
  readonly socket: WebSocket;
  /** The nonce of the coordinator's challenge. */
  readonly nonce: string;
  /** Waits for the socket to close, whoever closed it: its code and reason. */
  closed(): Promise<{ code: number; reason: string }>;
  /** The next message from the coordinator (parsed with the protocol schema). */
  next(): Promise<CoordinatorMessage>;
  send(message: unknown): void;
  /**
   * Signs the challenge with `privateKey` as `deviceId` and sends the auth message (saying
   * `localAddress` as the worker's own address when given: another than 127.0.0.1 is behind NAT).
   */
  auth(
    deviceId: string,
    privateKey: KeyObject,
    localAddress?: string,
  ): { type: "auth"; deviceId: string; signature: string; localAddress?: string };
}

const WAIT_MS = 10_000;

/** Opens `/v1/workers/connect` (with extra request `headers`) and waits for the challenge. */
export async function openWorkerSocket(
  coordinatorUrl: string,
  headers: Record<string, string> = {},
): Promise<WorkerSocket> {
  const url = new URL("/v1/workers/connect", coordinatorUrl);
  url.protocol = "ws:";
  const socket = new WebSocket(url, { headers });
  const queue: CoordinatorMessage[] = [];
  const waiters: Array<(m: CoordinatorMessage) => void> = [];
  socket.on("message", (data) => {
    const text = Array.isArray(data)
      ? Buffer.concat(data).toString("utf8")
      : Buffer.isBuffer(data)
        ? data.toString("utf8")
        : Buffer.from(new Uint8Array(data)).toString("utf8");
    const message = CoordinatorMessage.parse(JSON.parse(text));
    const waiter = waiters.shift();
    if (waiter === undefined) queue.push(message);
    else waiter(message);
  });
  const closed = new Promise<{ code: number; reason: string }>((resolve) =>
    socket.on("close", (code, reason) => resolve({ code, reason: reason.toString() })),
  );
  socket.on("error", () => {
    // A refused or reset connection also ends in "close", which is what tests wait for.
  });
  const next = () =>
    withTimeout(
      new Promise<CoordinatorMessage>((resolve) => {
        const queued = queue.shift();
        if (queued === undefined) waiters.push(resolve);
        else resolve(queued);
      }),
      "a message from the coordinator",
    );
  const challenge = await next();
  if (challenge.type !== "challenge")
    throw new Error(`expected a challenge, got ${challenge.type}`);
  const send = (message: unknown) =>
    socket.send(typeof message === "string" ? message : JSON.stringify(message));
  return {
    socket,
    nonce: challenge.nonce,
    closed: () => withTimeout(closed, "the socket to close"),
    next,
    send,
    auth(deviceId, privateKey, localAddress) {
      const message = {
        type: "auth" as const,
        deviceId,
        signature: signPayload(privateKey, connectPayload(deviceId, challenge.nonce)),
        ...(localAddress === undefined ? {} : { localAddress }),
      };
      send(message);
      return message;
    },
  };
}

/** Opens a socket, authenticates and waits for the welcome: an online worker that beats only when told. */
export async function connectWorker(
  coordinatorUrl: string,
  deviceId: string,
  privateKey: KeyObject,
  headers: Record<string, string> = {},
  localAddress?: string,
): Promise<WorkerSocket & { nodeId: string }> {
  const ws = await openWorkerSocket(coordinatorUrl, headers);
  ws.auth(deviceId, privateKey, localAddress);
  const welcome = await ws.next();
  if (welcome.type !== "welcome") throw new Error(`expected a welcome, got ${welcome.type}`);
  return { ...ws, nodeId: welcome.nodeId };
}

export function heartbeat(seq: number) {
  return {
    type: "heartbeat",
    seq,
    utilization: { cpuPct: 12.5, memoryUsedMiB: 2048, gpus: [] },
  };
}

/** Rejects after a generous `WAIT_MS` so a missing event fails the test instead of hanging it. */
export function withTimeout<T>(promise: Promise<T>, what: string, ms = WAIT_MS): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_resolve, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms waiting for ${what}`)), ms);
    timer.unref();
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}
