import assert from "node:assert/strict";
import { TandemClient } from "../../src/client/client.ts";
import type { NetworkCapability } from "../../src/protocol/cluster-network.ts";
import type { Engine, HardwareReport, RankLimits } from "../../src/protocol/hardware.ts";
import { httpRequest, type TestCoordinator } from "./coordinator.ts";
import {
  connectWorker,
  fixtureHardware,
  newDeviceKey,
  signedRegistration,
  type TestDevice,
  type WorkerSocket,
} from "./devices.ts";
import { proveHonestly } from "./prover.ts";

/**
 * A device registered by `apiKey` through `POST /v1/devices`, in eu-west-a, with an RTX 4090 unless
 * `hardware` says otherwise; never connected, so its node stays unverified.
 */
export async function registerDevice(
  tc: TestCoordinator,
  apiKey: string,
  hardware?: HardwareReport,
) {
  const device = newDeviceKey();
  const body = signedRegistration(device, {
    region: "eu-west",
    zone: "eu-west-a",
    hardware: hardware ?? (await fixtureHardware("rtx4090")),
  });
  const response = await httpRequest(tc.url, "POST", "/v1/devices", { apiKey, body });
  assert.equal(response.status, 201, response.text);
  const { deviceId, nodeId } = response.json as { deviceId: string; nodeId: string };
  return { device, body, deviceId, nodeId };
}

/**
 * A simulated worker over a real WebSocket: registered with a signed report of a CPU-only machine,
 * connected, and through the proof of hardware (its cores really multiply), so its node is available.
 * It then does only what the test tells it to.
 */
export async function availableWorker(
  t: TestCoordinator,
  apiKey: string,
  zone: string,
  /** The per-rank offer its hardware report carries (absent: a worker from before limits). */
  limits?: RankLimits,
  /** What it says it can do for job networks (absent: a worker from before them). */
  network?: NetworkCapability,
  /** The address it says in its `auth` (absent: none, as a worker before the field). */
  localAddress?: string,
  /** The engines its report lists (absent: none reported, as a worker before them). */
  engines?: Engine[],
): Promise<
  WorkerSocket & {
    nodeId: string;
    /** The same device connecting again, to this coordinator or another (after a restart). */
    reconnect(url?: string): Promise<WorkerSocket & { nodeId: string }>;
    /** Its device key (what opens secrets sealed to it). */
    device: TestDevice;
  }
> {
  const device = newDeviceKey();
  const registered = await t.client(apiKey).registerDevice(
    signedRegistration(device, {
      region: "eu-west",
      zone,
      hardware: {
        ...(await fixtureHardware("none")),
        ...(limits === undefined ? {} : { limits }),
        ...(network === undefined ? {} : { network }),
        ...(engines === undefined ? {} : { engines }),
      },
    }),
  );
  const worker = await connectWorker(
    t.url,
    registered.deviceId,
    device.privateKey,
    {},
    localAddress,
  );
  await proveHonestly(worker);
  // The same device connecting again (it is verified by then, so it goes straight to available).
  const reconnect = (url = t.url) =>
    connectWorker(url, registered.deviceId, device.privateKey, {}, localAddress);
  return { ...worker, reconnect, device };
}

/** Credits `accountId` with USDC through the admin deposit route. */
export async function fund(
  t: Pick<TestCoordinator, "url" | "adminKey">,
  accountId: string,
  amount: string,
): Promise<void> {
  const deposit = await fetch(`${t.url}/v1/wallet/deposits`, {
    method: "POST",
    headers: {
      "content-type": "application/json",
      authorization: `Bearer ${t.adminKey}`,
      "idempotency-key": `fund-${accountId}`,
    },
    body: JSON.stringify({ accountId, currency: "USDC", amount }),
  });
  assert.equal(deposit.status, 201, await deposit.text());
}

/**
 * What a real `tandem worker start` needs in its environment to enroll for the supplier of
 * `apiKey`: the coordinator's URL and a fresh single-use enrollment token. The worker process
 * never gets the key itself.
 */
export async function enrollmentEnv(
  url: string,
  apiKey: string,
): Promise<{ TANDEM_URL: string; TANDEM_ENROLL_TOKEN: string }> {
  const { token } = await new TandemClient({ baseUrl: url, apiKey }).createEnrollmentToken();
  return { TANDEM_URL: url, TANDEM_ENROLL_TOKEN: token };
}
