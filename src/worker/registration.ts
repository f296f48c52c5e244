import { publicKeyOf, registrationPayload, signPayload } from "../protocol/device-signing.ts";
import { RegisterDeviceResponse, type DeviceRegistration } from "../protocol/devices.ts";
import { ErrorBody } from "../protocol/errors.ts";
import type { HardwareReport } from "../protocol/hardware.ts";
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
 * Registers (or re-registers) this device with the supplier's API key, sending the hardware report
 * signed by the device key. Safe to call on every start: the coordinator answers the same ids.
 */
export async function registerDevice(options: {
  coordinatorUrl: string;
  apiKey: string;
  identity: DeviceIdentity;
  region: string;
  zone: string;
  hardware: HardwareReport;
}): Promise<RegisterDeviceResponse> {
  const registration: DeviceRegistration = {
    publicKey: publicKeyOf(options.identity.privateKey),
    region: options.region,
    zone: options.zone,
    hardware: options.hardware,
  };
  const signature = signPayload(options.identity.privateKey, registrationPayload(registration));
  const response = await fetch(new URL("/v1/devices", options.coordinatorUrl), {
    method: "POST",
    headers: { "content-type": "application/json", authorization: `Bearer ${options.apiKey}` },
    body: JSON.stringify({ ...registration, signature }),
  });
  const body: unknown = await response.json();
  if (!response.ok) {
    const error = ErrorBody.safeParse(body);
    throw error.success
      ? new RegistrationError(error.data.error.code, error.data.error.message)
      : new RegistrationError(
          "HTTP_" + response.status,
          `registration failed with HTTP ${response.status}`,
        );
  }
  return RegisterDeviceResponse.parse(body);
}
