import assert from "node:assert/strict";
import { test } from "node:test";
import { IdPrefix, idSchema, monotonicIds, newId } from "./ids.ts";

const T = Date.UTC(2026, 10, 25);
const ALPHABET = "0123456789abcdefghjkmnpqrstvwxyz";

test("ids are a prefix, 10 chars of time and 16 random, and sort by their time", () => {
  const a = newId(IdPrefix.cluster, T);
  const b = newId(IdPrefix.cluster, T + 1);
  assert.ok(idSchema(IdPrefix.cluster).safeParse(a).success, a);
  assert.ok(a < b);
  assert.notEqual(newId(IdPrefix.cluster, T), newId(IdPrefix.cluster, T));
});

test("monotonic ids sort in the order they were made, within a millisecond and across", () => {
  const next = monotonicIds(IdPrefix.transaction);
  const made = [
    ...Array.from({ length: 5_000 }, () => next(T)),
    ...Array.from({ length: 10 }, () => next(T + 1)),
    next(T - 60_000), // a clock that went back keeps the last time
    next(T + 2),
  ];
  for (const id of made) assert.ok(idSchema(IdPrefix.transaction).safeParse(id).success, id);
  assert.deepEqual([...made].sort(), made);
  assert.equal(new Set(made).size, made.length);
  // Within a millisecond they count up by one from a random start.
  const tail = (id: string) =>
    [...id.slice(13)].reduce((n, c) => n * 32n + BigInt(ALPHABET.indexOf(c)), 0n);
  assert.equal(made[0]!.slice(0, 13), made[4_999]!.slice(0, 13));
  assert.equal(tail(made[4_999]!) - tail(made[0]!), 4_999n);
  // Two sources start apart: the same millisecond gives different ids.
  assert.notEqual(monotonicIds(IdPrefix.transaction)(T), monotonicIds(IdPrefix.transaction)(T));
});
