import { xchacha20poly1305 } from "@noble/ciphers/chacha.js";
import { randomBytes } from "@noble/ciphers/utils.js";
import { ed25519, x25519 } from "@noble/curves/ed25519.js";
import { hkdf } from "@noble/hashes/hkdf.js";
import { sha256 } from "@noble/hashes/sha2.js";
import { MAX_SECRET_BYTES, SEALED_BOX_OVERHEAD_BYTES } from "./cluster-secrets.ts";

/**
 * Job secrets, sealed end to end: the consumer's machine seals each value to one worker's device
 * key, the coordinator stores and forwards only the sealed box, and only that worker can open it.
 *
 * Scheme (version 1), an ECIES over the device's existing Ed25519 identity:
 * - the recipient's X25519 key is its Ed25519 key mapped to the Montgomery curve
 *   (`toMontgomery` / `toMontgomerySecret`), so no second key has to be registered or trusted;
 * - the sender makes a fresh ephemeral X25519 key per box; shared = X25519(ephemeral, recipient);
 * - key = HKDF-SHA256(ikm = shared, salt = ephemeral public ‖ recipient public, info = version);
 * - XChaCha20-Poly1305 with a random 24-byte nonce, and as associated data the cluster id, the node
 *   id and the secret's name: a box replayed into another cluster, to another node or under another
 *   name fails to open.
 * Box = base64url(version byte ‖ ephemeral public (32) ‖ nonce (24) ‖ ciphertext ‖ tag (16)).
 * Forward secrecy is per box on the sender's side only: whoever steals a device key can open every
 * box ever sealed to it (the worker keeps none after the job).
 */

const VERSION = 1;
const INFO = new TextEncoder().encode("tandem/secret/v1");
const HEADER_BYTES = 1 + 32 + 24;
/** Poly1305's tag: the rest of the box's overhead. */
const TAG_BYTES = SEALED_BOX_OVERHEAD_BYTES - HEADER_BYTES;
/** What a box is bound to: it opens only for this cluster, this node and this name. */
export interface SecretBinding {
  clusterId: string;
  nodeId: string;
  name: string;
}

/** A box that does not open: wrong recipient, tampered, rebound or malformed. */
export class SecretOpenError extends Error {
  override readonly name = "SecretOpenError";
}

/**
 * Seals `value` (UTF-8 text) to a device's Ed25519 public key (base64url raw, as registered).
 * Throws on a key that is not a usable curve point (a small-order key gives no secret).
 */
export function sealSecret(devicePublicKey: string, binding: SecretBinding, value: string): string {
  const plaintext = new TextEncoder().encode(value);
  if (plaintext.length > MAX_SECRET_BYTES)
    throw new RangeError(`secret ${binding.name} is over ${MAX_SECRET_BYTES} bytes`);
  const recipient = ed25519.utils.toMontgomery(Buffer.from(devicePublicKey, "base64url"));
  const ephemeralSecret = x25519.utils.randomSecretKey();
  const ephemeral = x25519.getPublicKey(ephemeralSecret);
  const key = boxKey(x25519.getSharedSecret(ephemeralSecret, recipient), ephemeral, recipient);
  const nonce = randomBytes(24);
  const sealed = xchacha20poly1305(key, nonce, associatedData(binding)).encrypt(plaintext);
  return Buffer.concat([Uint8Array.of(VERSION), ephemeral, nonce, sealed]).toString("base64url");
}

/**
 * Opens a box with the device's Ed25519 seed (32 bytes): the value, or `SecretOpenError` when the
 * box was not sealed to this device for exactly this binding, or was changed on the way.
 */
export function openSecret(deviceSeed: Uint8Array, binding: SecretBinding, box: string): string {
  const bytes = Buffer.from(box, "base64url");
  if (bytes.length < HEADER_BYTES + TAG_BYTES || bytes[0] !== VERSION)
    throw new SecretOpenError(`secret ${binding.name}: not a sealed box`);
  const ephemeral = bytes.subarray(1, 33);
  const nonce = bytes.subarray(33, HEADER_BYTES);
  try {
    const secret = ed25519.utils.toMontgomerySecret(deviceSeed);
    const recipient = x25519.getPublicKey(secret);
    const key = boxKey(x25519.getSharedSecret(secret, ephemeral), ephemeral, recipient);
    const plaintext = xchacha20poly1305(key, nonce, associatedData(binding)).decrypt(
      bytes.subarray(HEADER_BYTES),
    );
    return new TextDecoder("utf-8", { fatal: true }).decode(plaintext);
  } catch (error) {
    throw new SecretOpenError(`secret ${binding.name} does not open on this device`, {
      cause: error,
    });
  }
}

function boxKey(shared: Uint8Array, ephemeral: Uint8Array, recipient: Uint8Array): Uint8Array {
  const salt = new Uint8Array(64);
  salt.set(ephemeral, 0);
  salt.set(recipient, 32);
  return hkdf(sha256, shared, salt, INFO, 32);
}

/** Length-prefixed, so no two different bindings encode alike. */
function associatedData({ clusterId, nodeId, name }: SecretBinding): Uint8Array {
  const parts = ["tandem/secret/v1", clusterId, nodeId, name].map((p) =>
    new TextEncoder().encode(p),
  );
  const out = new Uint8Array(parts.reduce((n, p) => n + 2 + p.length, 0));
  let at = 0;
  for (const part of parts) {
    out[at] = part.length >> 8;
    out[at + 1] = part.length & 0xff;
    out.set(part, at + 2);
    at += 2 + part.length;
  }
  return out;
}
