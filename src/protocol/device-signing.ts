import { createPrivateKey, createPublicKey, sign, type KeyObject } from "node:crypto";
import { canonicalJson } from "./canonical-json.ts";
import type { DeviceRegistration } from "./devices.ts";
import { verifyStrict } from "./ed25519-keys.ts";

/**
 * What a device signs. Each payload names its purpose so a signature made for one can never be
 * replayed as the other, and the connect payload binds the device id to the server's fresh nonce.
 */
export function registrationPayload(registration: DeviceRegistration): Buffer {
  return Buffer.from(canonicalJson({ purpose: "tandem/register/v1", ...registration }));
}

export function connectPayload(deviceId: string, nonce: string): Buffer {
  return Buffer.from(`tandem/connect/v1\n${deviceId}\n${nonce}`);
}

export function signPayload(privateKey: KeyObject, payload: Buffer): string {
  return sign(null, payload, privateKey).toString("base64url");
}

/**
 * False for a bad signature or a malformed, non-canonical or small-order key (strict Ed25519,
 * ed25519-keys.ts): the caller refuses either way.
 */
export function verifyPayload(publicKey: string, payload: Buffer, signature: string): boolean {
  return verifyStrict(publicKey, payload, signature);
}

/** The base64url raw public key of an Ed25519 private key. */
export function publicKeyOf(privateKey: KeyObject): string {
  const jwk = createPublicKey(privateKey).export({ format: "jwk" });
  if (typeof jwk.x !== "string") throw new Error("not an Ed25519 key");
  return jwk.x;
}

export function privateKeyFromPem(pem: string): KeyObject {
  return createPrivateKey(pem);
}

/** The raw 32-byte seed of an Ed25519 private key: what opens secrets sealed to the device. */
export function seedOf(privateKey: KeyObject): Uint8Array {
  const jwk = privateKey.export({ format: "jwk" });
  if (jwk.crv !== "Ed25519" || typeof jwk.d !== "string") throw new Error("not an Ed25519 key");
  return Buffer.from(jwk.d, "base64url");
}
