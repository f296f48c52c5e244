import assert from "node:assert/strict";
import { test } from "node:test";
import { parseTtl } from "./worker-enroll.ts";

test("--ttl takes seconds, minutes or hours between 1 minute and 24 hours", () => {
  assert.equal(parseTtl("1h"), 3600);
  assert.equal(parseTtl("30m"), 1800);
  assert.equal(parseTtl("90"), 90);
  assert.equal(parseTtl("90s"), 90);
  assert.equal(parseTtl("24h"), 86_400);
  for (const bad of ["59s", "25h", "1441m", "1d", "-1h", "1.5h", "", "h"])
    assert.throws(() => parseTtl(bad), /--ttl/, bad);
});
