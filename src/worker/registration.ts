import { deviceAuthorization } from "../protocol/device-auth.ts";
import { publicKeyOf, registrationPayload, signPayload } from "../protocol/device-signing.ts";
import { RegisterDeviceResponse, type DeviceRegistration } from "../protocol/devices.ts";
import { ErrorBody } from "../protocol/errors.ts";
import type { HardwareReport } from "../protocol/hardware.ts";
import { postJson } from "./coordinator-http.ts";
import { CoordinatorTrustError } from "./coordinator-trust.ts";
import type { DeviceIdentity } from "./identity.ts";

/** A refusal from the coordinator, with its stable error code. */
export class RegistrationError extends Error {
  constructor(
    readonly code: string,
    message: string,
    /** The HTTP status of the refusal (absent: refused here, before asking). */
    readonly status?: number,
  ) {
    super(message);
    this.name = "RegistrationError";
  }
}

/** Connection failures that a coordinator starting up (or a network coming up) heals. */
const TRANSIENT_CODES = new Set([
  "ECONNREFUSED",
  "ECONNRESET",
  "ECONNABORTED",
  "EHOSTUNREACH",
  "ENETUNREACH",
  "EHOSTDOWN",
  "ENETDOWN",
  "ETIMEDOUT",
  "EPIPE",
  "EAI_AGAIN",
  "ENOTFOUND",
]);

/**
 * Whether a failed registration may succeed if tried again: the coordinator unreachable, not
 * answering, or answering 5xx or 429. A refusal (a bad token, a revoked device, an unknown zone,
 * an untrusted certificate) never heals.
 */
export function isTransientRegistrationFailure(error: unknown): boolean {
  if (error instanceof RegistrationError)
    return error.status !== undefined && (error.status >= 500 || error.status === 429);
  if (!(error instanceof Error) || error instanceof CoordinatorTrustError) return false;
  const code = (error as NodeJS.ErrnoException).code;
  if (code !== undefined) return TRANSIENT_CODES.has(code);
  return error.message.startsWith("no answer from the coordinator");
}

/** Waits between registration tries: the first, doubled after each failure up to the last. */
export const REGISTER_RETRY = { firstMs: 500, maxMs: 15_000 } as const;

/**
 * `register`, tried again with backoff while it fails in a way that heals (the coordinator not
 * up yet: {@link isTransientRegistrationFailure}), each wait logged; any other failure at once.
 */
export async function registerWhenReachable<T>(
  register: () => Promise<T>,
  log: (message: string, fields?: Record<string, unknown>) => void,
  retry: { firstMs: number; maxMs: number } = REGISTER_RETRY,
): Promise<T> {
  let waitMs = retry.firstMs;
  for (let attempt = 1; ; attempt++) {
    try {
      return await register();
    } catch (error) {
      if (!isTransientRegistrationFailure(error)) throw error;
      // ±20 % so a fleet of workers started together does not come back in step.
      const jittered = Math.round(waitMs * (0.8 + Math.random() * 0.4));
      log("coordinator not reachable yet; retrying", {
        attempt,
        retryInMs: jittered,
        error: error instanceof Error ? error.message : String(error),
      });
      await new Promise((resolve) => setTimeout(resolve, jittered));
      waitMs = Math.min(waitMs * 2, retry.maxMs);
    }
  }
}

/**
 * What a registration proves itself with: the supplier's single-use enrollment token the first
 * time, the device's own signature (`Authorization: Device …`) on every later start. Never the
 * supplier's API key: the worker machine does not hold one.
 */
export type RegistrationCredential = { enrollmentToken: string } | { deviceId: string };

const REGISTER_PATH = "/v1/devices";

/**
 * Registers (or re-registers) this device, sending the hardware report signed by the device key.
 * Safe to call on every start: the coordinator answers the same ids.
 */
export async function registerDevice(options: {
  coordinatorUrl: string;
  /** The only CA trusted for an https coordinator (`--ca-file`); absent, Node's roots. */
  ca?: string | undefined;
  credential: RegistrationCredential;
  identity: DeviceIdentity;
  region: string;
  zone: string;
  hardware: HardwareReport;
}): Promise<RegisterDeviceResponse> {
  const { credential, identity } = options;
  const registration: DeviceRegistration = {
    publicKey: publicKeyOf(identity.privateKey),
    region: options.region,
    zone: options.zone,
    hardware: options.hardware,
  };
  const signature = signPayload(identity.privateKey, registrationPayload(registration));
  const headers: Record<string, string> = { "content-type": "application/json" };
  if ("deviceId" in credential)
    headers["authorization"] = deviceAuthorization(
      identity.privateKey,
      credential.deviceId,
      "POST",
      REGISTER_PATH,
      Date.now(),
    );
  const body =
    "enrollmentToken" in credential
      ? { ...registration, signature, enrollmentToken: credential.enrollmentToken }
      : { ...registration, signature };
  const response = await postJson(new URL(REGISTER_PATH, options.coordinatorUrl), {
    headers,
    body: JSON.stringify(body),
    ca: options.ca,
  });
  const answer = response.body;
  if (!response.ok) {
    const error = ErrorBody.safeParse(answer);
    throw error.success
      ? new RegistrationError(error.data.error.code, error.data.error.message, response.status)
      : new RegistrationError(
          "HTTP_" + response.status,
          `registration failed with HTTP ${response.status}`,
          response.status,
        );
  }
  return RegisterDeviceResponse.parse(answer);
}

/**
 * This start's registration: by the device's signature when it has registered before (its ids
 * are saved), else — or when the coordinator no longer knows the device — with the enrollment
 * token, which is then used up.
 */
export async function registerThisDevice(
  options: Omit<Parameters<typeof registerDevice>[0], "credential"> & {
    enrollmentToken: string | undefined;
    log: (message: string, fields?: Record<string, unknown>) => void;
  },
): Promise<RegisterDeviceResponse> {
  const { enrollmentToken, log, ...rest } = options;
  const deviceId = options.identity.deviceId;
  if (deviceId !== undefined) {
    try {
      return await registerDevice({ ...rest, credential: { deviceId } });
    } catch (error) {
      if (
        !(error instanceof RegistrationError) ||
        error.code !== "UNAUTHENTICATED" ||
        enrollmentToken === undefined
      )
        throw error;
      log("the coordinator refused this device's signature; enrolling with the token", {
        deviceId,
      });
    }
  }
  if (enrollmentToken === undefined)
    throw new RegistrationError(
      "NOT_ENROLLED",
      "this machine is not enrolled: make a token on the supplier's machine " +
        "(`tandem worker enroll-token`) and start the worker with it " +
        "(--enroll-token-file, $TANDEM_ENROLL_TOKEN or --enroll-token)",
    );
  return registerDevice({ ...rest, credential: { enrollmentToken } });
}
