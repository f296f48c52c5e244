import { ed25519 } from "@noble/curves/ed25519.js";

/**
 * Strict Ed25519 for device identities (RFC 8032 decoding, no ZIP-215 leniency, plus the
 * small-order rejection RFC 8032 leaves out).
 *
 * OpenSSL, behind node:crypto, verifies against any decodable point: with the identity point as
 * public key (`AQAA…A`) and R = identity, S = 0, every message "verifies", so whoever knew a
 * device id registered that way could authenticate as it. A key or signature is accepted here only
 * when:
 * - its base64url text is the one canonical spelling of its bytes (no trailing bits set), so one
 *   key has one text and the registry's uniqueness on `public_key` means one key;
 * - the key decodes to a point with y < p (non-canonical encodings refused);
 * - the point is not of small order (the 8 torsion points: identity, order 2, 4 and 8);
 * - the signature's R decodes canonically and S < L (noble's strict mode checks both).
 */

const PUBLIC_KEY_BYTES = 32;
const SIGNATURE_BYTES = 64;

/** The bytes of `text` when it is the canonical unpadded base64url spelling of `length` bytes. */
function canonicalBase64Url(text: string, length: number): Uint8Array | undefined {
  const bytes = Buffer.from(text, "base64url");
  if (bytes.length !== length || bytes.toString("base64url") !== text) return undefined;
  return new Uint8Array(bytes);
}

/** Why a public key is refused, or undefined when it is a strict, full-order Ed25519 point. */
export function publicKeyDefect(publicKey: string): string | undefined {
  const bytes = canonicalBase64Url(publicKey, PUBLIC_KEY_BYTES);
  if (bytes === undefined) return "not the canonical base64url of 32 bytes";
  let point;
  try {
    point = ed25519.Point.fromBytes(bytes, false);
  } catch {
    return "not a canonical encoding of a curve point";
  }
  if (point.isSmallOrder()) return "a small-order point";
  return undefined;
}

/**
 * Whether `signature` is a strict Ed25519 signature of `payload` by `publicKey` (both base64url).
 * False for anything malformed, non-canonical or small-order: callers refuse either way.
 */
export function verifyStrict(publicKey: string, payload: Uint8Array, signature: string): boolean {
  const key = canonicalBase64Url(publicKey, PUBLIC_KEY_BYTES);
  const sig = canonicalBase64Url(signature, SIGNATURE_BYTES);
  if (key === undefined || sig === undefined) return false;
  try {
    // zip215: false is RFC 8032 decoding, and noble then also refuses a small-order key.
    return ed25519.verify(sig, payload, key, { zip215: false });
  } catch {
    return false;
  }
}
