import assert from "node:assert/strict";
import { describe, it } from "node:test";
import Fastify from "fastify";
import { ErrorCode, TandemError } from "../../core/errors.ts";
import { errorHandler } from "./http-errors.ts";

/** A database's own error: a driver's message names tables, constraints and values. */
class DatabaseError extends Error {
  readonly code = "22003";
}

describe("error handler", () => {
  it("answers a database error or a broken invariant as a generic INTERNAL, its text only in the log", async (t) => {
    const logged: string[] = [];
    const app = Fastify({
      logger: {
        level: "error",
        stream: { write: (line: string) => void logged.push(line) },
      },
    });
    t.after(() => app.close());
    app.setErrorHandler(errorHandler);
    app.get("/db", () => {
      throw new DatabaseError(
        'bigint out of range in "ledger_balances" (balance 9223372036854775807)',
      );
    });
    app.get("/invariant", () => {
      throw new TandemError(
        ErrorCode.INTERNAL,
        "amount out of the 64-bit range: -18446744073709551614",
      );
    });
    for (const [path, secret] of [
      ["/db", "ledger_balances"],
      ["/invariant", "18446744073709551614"],
    ] as const) {
      const answer = await app.inject({ method: "GET", url: path });
      assert.equal(answer.statusCode, 500);
      assert.deepEqual(answer.json(), { error: { code: "INTERNAL", message: "internal error" } });
      assert.ok(!answer.body.includes(secret));
      assert.ok(
        logged.some((line) => line.includes(secret)),
        `${path} is logged`,
      );
    }
  });
});
