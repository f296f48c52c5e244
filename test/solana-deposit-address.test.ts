/**
 * `GET /v1/wallet/deposit-address` on a real coordinator, on SQLite and PostgreSQL: a stable
 * address per account and currency with the Solana rail on, typed errors for bad input, and
 * RAIL_DISABLED with it off. (The watcher and crediting: billing/solana/deposits.test.ts.)
 */
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { generateKeyPairSigner } from "@solana/kit";
import { forEachDatabase, type TestCoordinator } from "./support/coordinator.ts";

async function get(tc: TestCoordinator, query: string, apiKey?: string) {
  const response = await fetch(new URL(`/v1/wallet/deposit-address${query}`, tc.url), {
    headers: apiKey === undefined ? {} : { authorization: `Bearer ${apiKey}` },
  });
  const body = (await response.json()) as { error?: { code: string } } & Record<string, unknown>;
  return { status: response.status, code: body.error?.code, body };
}

forEachDatabase("deposit address API", (db) => {
  test("with the rail on: one address per account and currency; bad input is a typed 4xx", async (t) => {
    const dir = await mkdtemp(join(tmpdir(), "tandem-solana-"));
    t.after(() => rm(dir, { recursive: true, force: true }));
    const keyFile = join(dir, "treasury.json");
    await writeFile(keyFile, JSON.stringify([...randomBytes(64)]), { mode: 0o600 });
    const mints = {
      USDC: (await generateKeyPairSigner()).address,
      TDM: (await generateKeyPairSigner()).address,
    };
    const tc = await db.startCoordinator({
      config: {
        // Never reached: the watcher's first beat finds no owner, the next is an hour away.
        solana: {
          rpcUrl: "http://127.0.0.1:9",
          mints,
          treasuryKeyFile: keyFile,
          pollMs: 3_600_000,
        },
      },
    });
    t.after(() => tc.close());
    const [a, b] = [await tc.signUp(["consumer"]), await tc.signUp(["supplier"])];

    const first = await get(tc, "?currency=USDC", a.apiKey);
    assert.equal(first.status, 200, JSON.stringify(first.body));
    assert.equal(first.body.mint, mints.USDC);
    assert.equal(first.body.network, "solana");
    assert.deepEqual((await get(tc, "?currency=USDC", a.apiKey)).body, first.body);
    const tdm = await get(tc, "?currency=TDM", a.apiKey);
    assert.notEqual(tdm.body.address, first.body.address);
    assert.equal(tdm.body.owner, first.body.owner);
    const other = await get(tc, "?currency=USDC", b.apiKey);
    assert.notEqual(other.body.address, first.body.address);

    assert.deepEqual(pick(await get(tc, "?currency=USD", a.apiKey)), [400, "UNKNOWN_CURRENCY"]);
    assert.deepEqual(pick(await get(tc, "?currency=BTC", a.apiKey)), [400, "UNKNOWN_CURRENCY"]);
    assert.deepEqual(pick(await get(tc, "", a.apiKey)), [400, "VALIDATION_FAILED"]);
    assert.deepEqual(pick(await get(tc, "?currency=USDC")), [401, "UNAUTHENTICATED"]);
    assert.deepEqual(pick(await get(tc, "?currency=USDC", "tdm_nonsense")), [
      401,
      "UNAUTHENTICATED",
    ]);
  });

  test("with the rail off: RAIL_DISABLED", async (t) => {
    const tc = await db.startCoordinator();
    t.after(() => tc.close());
    const user = await tc.signUp(["consumer"]);
    assert.deepEqual(pick(await get(tc, "?currency=USDC", user.apiKey)), [404, "RAIL_DISABLED"]);
  });
});

function pick(answer: { status: number; code: string | undefined }) {
  return [answer.status, answer.code];
}
