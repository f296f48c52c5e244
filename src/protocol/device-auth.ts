import type { KeyObject } from "node:crypto";
import { signPayload, verifyPayload } from "./device-signing.ts";

/**
 * A device's own credential on the REST API, instead of an account key:
 * `Authorization: Device <device id>.<signed-at ms>.<signature>`, the signature by the device key
 * over the purpose, method, path and time. The coordinator accepts it within
 * `DEVICE_AUTH_MAX_SKEW_MS` of its own clock and only on the routes a device uses (its own
 * re-registration); every other route refuses it. A request whose body matters signs the body
 * itself too (a registration is signed by `registrationPayload`).
 */
export const DEVICE_AUTH_SCHEME = "Device";

/** How far a device signature's time may be from the coordinator's clock, either way, ms. */
export const DEVICE_AUTH_MAX_SKEW_MS = 5 * 60_000;

export interface DeviceAuthorization {
  deviceId: string;
  signedAtMs: number;
  signature: string;
}

function deviceRequestPayload(
  deviceId: string,
  method: string,
  path: string,
  signedAtMs: number,
): Buffer {
  return Buffer.from(`tandem/device-request/v1\n${deviceId}\n${method}\n${path}\n${signedAtMs}`);
}

/** The Authorization header value a device sends with `method path` at `nowMs`. */
export function deviceAuthorization(
  privateKey: KeyObject,
  deviceId: string,
  method: string,
  path: string,
  nowMs: number,
): string {
  const signature = signPayload(privateKey, deviceRequestPayload(deviceId, method, path, nowMs));
  return `${DEVICE_AUTH_SCHEME} ${deviceId}.${nowMs}.${signature}`;
}

/** The parts of a `Device` Authorization header, or undefined if it is not one. */
export function parseDeviceAuthorization(header: string): DeviceAuthorization | undefined {
  const match = /^Device (dev_[0-9a-z]{26})\.(\d{1,15})\.([A-Za-z0-9_-]{86})$/.exec(header);
  if (match === null) return undefined;
  return { deviceId: match[1]!, signedAtMs: Number(match[2]), signature: match[3]! };
}

/** Whether `auth` is `publicKey`'s signature of `method path`, made within the skew of `nowMs`. */
export function verifyDeviceAuthorization(
  auth: DeviceAuthorization,
  publicKey: string,
  method: string,
  path: string,
  nowMs: number,
): boolean {
  if (Math.abs(nowMs - auth.signedAtMs) > DEVICE_AUTH_MAX_SKEW_MS) return false;
  return verifyPayload(
    publicKey,
    deviceRequestPayload(auth.deviceId, method, path, auth.signedAtMs),
    auth.signature,
  );
}
