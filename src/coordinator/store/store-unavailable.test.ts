import assert from "node:assert/strict";
import { test } from "node:test";
import { storeUnavailableReason } from "./store-unavailable.ts";

const withCode = (code: string, message = "x") => Object.assign(new Error(message), { code });

test("locks, full disks and lost connections are unavailability; other database errors are bugs", () => {
  const unavailable = [
    withCode("SQLITE_BUSY"),
    withCode("SQLITE_BUSY_SNAPSHOT"),
    withCode("SQLITE_FULL"),
    withCode("SQLITE_IOERR_WRITE"),
    withCode("08006"), // PostgreSQL: connection failure
    withCode("53100"), // disk full
    withCode("57P01"), // admin shutdown
    withCode("ECONNREFUSED"),
    new Error("Connection terminated unexpectedly"),
    new Error("a query failed", { cause: withCode("SQLITE_BUSY") }),
  ];
  for (const error of unavailable) assert.ok(storeUnavailableReason(error), error.message);
  const bugs = [
    withCode("SQLITE_CONSTRAINT_UNIQUE"),
    withCode("SQLITE_ERROR"),
    withCode("23505"), // unique violation
    withCode("42P01"), // undefined table
    withCode("P0001"), // a raised exception (the ledger's guards)
    new Error("plain"),
    "not an error",
  ];
  for (const error of bugs) assert.equal(storeUnavailableReason(error), undefined, String(error));
});
