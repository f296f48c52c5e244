import { randomBytes } from "node:crypto";
import { z } from "zod";

/** Every id is `<prefix>_<26 chars>`: 10 chars of millisecond time then 16 random, Crockford base32, lower case, so ids sort by creation time (cursors rely on it). */
export const IdPrefix = {
  account: "acct",
  apiKey: "key",
  enrollmentToken: "enr",
  device: "dev",
  node: "node",
  cluster: "clu",
  job: "job",
  transaction: "tx",
  /** A coordinator replica, for one run of its process. */
  replica: "rep",
  stake: "stk",
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
  let tail = "";
  for (const byte of randomSlice()) tail += ALPHABET[byte % 32]!;
  return `${prefix}_${timePart(nowMs)}${tail}`;
}

function timePart(nowMs: number): string {
  let time = "";
  let t = nowMs;
  for (let i = 0; i < 10; i++) {
    time = ALPHABET[t % 32]! + time;
    t = Math.floor(t / 32);
  }
  return time;
}

/**
 * A source of ids that sort in the order it made them (ULID's monotonic mode): ids of one
 * millisecond share a random start and count up from it, and a time earlier than the last one
 * keeps the last. A settlement pass makes 10,000 transaction ids in one millisecond; random ones
 * land all over the indexes on them (the ledger's primary key, the postings' transaction index),
 * where each insert descends the B-tree, while ids that only grow are appended at the right edge,
 * which PostgreSQL does without a descent. Ids from two sources stay apart as random ones do:
 * each starts at its own random point of 2^79.
 */
export function monotonicIds(prefix: IdPrefix): (nowMs?: number) => string {
  let lastMs = -1;
  let time = "";
  let tail: number[] = []; // base-32 digits
  return (nowMs = Date.now()) => {
    if (nowMs > lastMs) {
      lastMs = nowMs;
      time = timePart(nowMs);
      // Top bit clear: room to count up 2^79 times before the tail would overflow.
      tail = [...randomSlice()].map((byte, i) => (i === 0 ? byte % 16 : byte % 32));
    } else {
      let i = tail.length - 1;
      while (tail[i] === 31) tail[i--] = 0;
      tail[i]! += 1;
    }
    let digits = "";
    for (const digit of tail) digits += ALPHABET[digit]!;
    return `${prefix}_${time}${digits}`;
  };
}

/** A zod schema for an id with the given prefix. */
export function idSchema(prefix: IdPrefix) {
  return z.string().regex(new RegExp(`^${prefix}_[0-9a-z]{26}$`), `expected a ${prefix}_ id`);
}
