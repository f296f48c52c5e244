import { randomBytes } from "node:crypto";
import { z } from "zod";

/** Every id is `<prefix>_<26 chars>`: 10 chars of millisecond time then 16 random, Crockford base32, lower case, so ids sort by creation time (cursors rely on it). */
export const IdPrefix = {
  account: "acct",
  apiKey: "key",
  device: "dev",
  node: "node",
  cluster: "clu",
  job: "job",
  transaction: "tx",
} as const;
export type IdPrefix = (typeof IdPrefix)[keyof typeof IdPrefix];

const ALPHABET = "0123456789abcdefghjkmnpqrstvwxyz";

export function newId(prefix: IdPrefix, nowMs: number = Date.now()): string {
  let time = "";
  let t = nowMs;
  for (let i = 0; i < 10; i++) {
    time = ALPHABET[t % 32]! + time;
    t = Math.floor(t / 32);
  }
  const random = randomBytes(16);
  let tail = "";
  for (const byte of random) tail += ALPHABET[byte % 32]!;
  return `${prefix}_${time}${tail}`;
}

/** A zod schema for an id with the given prefix. */
export function idSchema(prefix: IdPrefix) {
  return z.string().regex(new RegExp(`^${prefix}_[0-9a-z]{26}$`), `expected a ${prefix}_ id`);
}
