import { createHash } from "node:crypto";

/** The digest a worker commits to for one row of the challenge product: SHA-256 of its little-endian bytes. */
export function rowDigest(values: Uint32Array): string {
  const bytes = Buffer.alloc(values.length * 4);
  for (let i = 0; i < values.length; i++) bytes.writeUInt32LE(values[i]!, i * 4);
  return createHash("sha256").update(bytes).digest("base64url");
}
