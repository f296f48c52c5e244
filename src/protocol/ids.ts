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
const RANDOM_BYTES_PER_ID = 16;

/**
 * Random bytes drawn 4 KiB at a time (as the `uuid` package pools them): one call into the
 * kernel's CSPRNG per 256 ids instead of one per id, which was ~5 µs of every id (a settlement
 * pass makes 10,000 of them).
 */
const POOL_BYTES = 4096;
let pool: Uint8Array = new Uint8Array(0);
let poolOffset = 0;

function randomSlice(): Uint8Array {
  if (poolOffset + RANDOM_BYTES_PER_ID > pool.length) {
    pool = randomBytes(POOL_BYTES); // the explorer's build maps this to crypto.getRandomValues
    poolOffset = 0;
  }
  poolOffset += RANDOM_BYTES_PER_ID;
  return pool.subarray(poolOffset - RANDOM_BYTES_PER_ID, poolOffset);
}

export function newId(prefix: IdPrefix, nowMs: number = Date.now()): string {
  let time = "";
  let t = nowMs;
  for (let i = 0; i < 10; i++) {
    time = ALPHABET[t % 32]! + time;
    t = Math.floor(t / 32);
  }
  let tail = "";
  for (const byte of randomSlice()) tail += ALPHABET[byte % 32]!;
  return `${prefix}_${time}${tail}`;
}

/** A zod schema for an id with the given prefix. */
export function idSchema(prefix: IdPrefix) {
  return z.string().regex(new RegExp(`^${prefix}_[0-9a-z]{26}$`), `expected a ${prefix}_ id`);
}
