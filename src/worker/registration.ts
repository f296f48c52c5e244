import { deviceAuthorization } from "../protocol/device-auth.ts";
import { publicKeyOf, registrationPayload, signPayload } from "../protocol/device-signing.ts";
import { RegisterDeviceResponse, type DeviceRegistration } from "../protocol/devices.ts";
import { ErrorBody } from "../protocol/errors.ts";
import type { HardwareReport } from "../protocol/hardware.ts";
import { postJson } from "./coordinator-http.ts";
import type { DeviceIdentity } from "./identity.ts";

/** A refusal from the coordinator, with its stable error code. */
export class RegistrationError extends Error {
  constructor(
    readonly code: string,
    message: string,
  ) {
    super(message);
    this.name = "RegistrationError";
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
      ? new RegistrationError(error.data.error.code, error.data.error.message)
      : new RegistrationError(
          "HTTP_" + response.status,
          `registration failed with HTTP ${response.status}`,
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
