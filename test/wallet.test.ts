/**
 * The wallet API on a real coordinator, on SQLite and PostgreSQL: deposits (admin and faucet),
 * withdrawals, balances, history, idempotent replays, bad input, concurrent overdraws, cluster
 * costs and the ledger audit.
 */
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { promisify } from "node:util";
import { test } from "node:test";
import { sql } from "kysely";
import { quote } from "../src/core/fees.ts";
import { money } from "../src/core/money.ts";
import type { TandemApiError } from "../src/client/client.ts";
import { IdPrefix, newId } from "../src/protocol/ids.ts";
import { forEachDatabase, type TestCoordinator } from "./support/coordinator.ts";
import { TANDEM_BIN } from "./support/processes.ts";

const execFileAsync = promisify(execFile);

interface Raw {
  status: number;
  headers: Headers;
  body: { error?: { code: string; details?: Record<string, unknown> } } & Record<string, unknown>;
}

async function post(
  tc: TestCoordinator,
  path: string,
  apiKey: string,
  body: unknown,
  key?: string,
): Promise<Raw> {
  const headers: Record<string, string> = {
    authorization: `Bearer ${apiKey}`,
    "content-type": "application/json",
  };
  if (key !== undefined) headers["idempotency-key"] = key;
  const response = await fetch(new URL(path, tc.url), {
    method: "POST",
    headers,
    body: JSON.stringify(body),
  });
  return {
    status: response.status,
    headers: response.headers,
    body: (await response.json()) as Raw["body"],
  };
}

/** Every ledger row, to compare before and after a refused request. */
async function ledgerSnapshot(tc: TestCoordinator) {
  const db = tc.coordinator.store.db;
  const [t, p, b] = await Promise.all([
    sql<{ n: string }>`SELECT CAST(COUNT(*) AS TEXT) AS n FROM ledger_transactions`.execute(db),
    sql<{ n: string }>`SELECT CAST(COUNT(*) AS TEXT) AS n FROM ledger_postings`.execute(db),
    sql<{ s: string | null }>`SELECT CAST(SUM(balance) AS TEXT) AS s FROM ledger_balances`.execute(
      db,
    ),
  ]);
  return { transactions: t.rows[0]?.n, postings: p.rows[0]?.n, balances: b.rows[0]?.s };
}

const usdc = (view: { balances: Array<{ currency: string; wallet: string; earnings: string }> }) =>
  view.balances.find((b) => b.currency === "USDC");

forEachDatabase("wallet API", (db) => {
  test("an admin deposits; balances and history show it; a replay answers the same and moves nothing", async (t) => {
    const tc = await db.startCoordinator();
    t.after(() => tc.close());
    const user = await tc.signUp(["consumer"]);
    const body = { accountId: user.accountId, currency: "USDC", amount: "1000" };

    const first = await post(tc, "/v1/wallet/deposits", tc.adminKey, body, "dep-1");
    assert.equal(first.status, 201);
    assert.equal(first.body.amount, "1000.000000");
    assert.equal(first.body.rail, "manual");
    assert.equal(first.headers.get("idempotent-replayed"), null);
    const before = await ledgerSnapshot(tc);

    const again = await post(tc, "/v1/wallet/deposits", tc.adminKey, body, "dep-1");
    assert.equal(again.status, 201);
    assert.equal(again.headers.get("idempotent-replayed"), "true");
    assert.deepEqual(again.body, first.body);
    assert.deepEqual(await ledgerSnapshot(tc), before);

    const conflict = await post(
      tc,
      "/v1/wallet/deposits",
      tc.adminKey,
      { ...body, amount: "999" },
      "dep-1",
    );
    assert.equal(conflict.status, 409);
    assert.equal(conflict.body.error?.code, "IDEMPOTENCY_CONFLICT");
    assert.deepEqual(await ledgerSnapshot(tc), before);

    // The same key from another caller is another key.
    await user.client.deposit({ currency: "TDM", amount: "1" }, "dep-1").then(
      () => assert.fail("the faucet is off"),
      (error: unknown) => assert.equal((error as TandemApiError).code, "FORBIDDEN"),
    );

    const view = await user.client.wallet();
    assert.deepEqual(usdc(view), { currency: "USDC", wallet: "1000.000000", earnings: "0.000000" });
    assert.equal(view.balances.length, 3);
    const history = await user.client.walletTransactions();
    assert.equal(history.items.length, 1);
    assert.deepEqual(history.items[0]?.entries, [
      { balance: "wallet", currency: "USDC", leg: "deposit", amount: "1000.000000" },
    ]);
    assert.equal(history.items[0]?.id, first.body.transactionId);
  });

  test("the faucet credits only the caller's own wallet, and only when it is on", async (t) => {
    const tc = await db.startCoordinator({ config: { faucet: true } });
    t.after(() => tc.close());
    const a = await tc.signUp(["consumer"]);
    const b = await tc.signUp(["consumer"]);
    const own = await a.client.deposit({ currency: "TDM", amount: "5.5" });
    assert.equal(own.accountId, a.accountId);
    assert.equal(own.amount, "5.500000");
    const other = await post(
      tc,
      "/v1/wallet/deposits",
      a.apiKey,
      { accountId: b.accountId, currency: "TDM", amount: "1" },
      "k",
    );
    assert.equal(other.status, 403);
    assert.equal(other.body.error?.code, "FORBIDDEN");
    const anonymous = await fetch(new URL("/v1/wallet/deposits", tc.url), {
      method: "POST",
      headers: { "content-type": "application/json", "idempotency-key": "x" },
      body: JSON.stringify({ currency: "TDM", amount: "1" }),
    });
    assert.equal(anonymous.status, 401);
    assert.equal(usdc(await b.client.wallet())?.wallet, "0.000000");
  });

  test("bad amounts, currencies and bodies answer 400 with exact codes and change nothing", async (t) => {
    const tc = await db.startCoordinator({ config: { faucet: true } });
    t.after(() => tc.close());
    const user = await tc.signUp(["consumer", "supplier"]);
    await user.client.deposit({ currency: "USDC", amount: "100" });
    const before = await ledgerSnapshot(tc);
    const cases: Array<[string, unknown, string, string?]> = [
      ["/v1/wallet/deposits", { currency: "USDC", amount: "-1" }, "INVALID_AMOUNT", "NEGATIVE"],
      ["/v1/wallet/deposits", { currency: "USDC", amount: "0" }, "INVALID_AMOUNT", "ZERO"],
      ["/v1/wallet/deposits", { currency: "USDC", amount: "0.000000" }, "INVALID_AMOUNT", "ZERO"],
      [
        "/v1/wallet/deposits",
        { currency: "USDC", amount: "1.0000001" },
        "INVALID_AMOUNT",
        "TOO_MANY_DECIMALS",
      ],
      [
        "/v1/wallet/deposits",
        { currency: "USDC", amount: "9223372036854.775808" },
        "INVALID_AMOUNT",
        "TOO_LARGE",
      ],
      [
        "/v1/wallet/deposits",
        { currency: "USDC", amount: "abc" },
        "INVALID_AMOUNT",
        "NOT_A_NUMBER",
      ],
      [
        "/v1/wallet/deposits",
        { currency: "USDC", amount: "1e3" },
        "INVALID_AMOUNT",
        "NOT_A_NUMBER",
      ],
      ["/v1/wallet/deposits", { currency: "EUR", amount: "1" }, "UNKNOWN_CURRENCY"],
      ["/v1/wallet/deposits", { currency: "usdc", amount: "1" }, "UNKNOWN_CURRENCY"],
      ["/v1/wallet/deposits", { currency: "USDC", amount: 1 }, "VALIDATION_FAILED"],
      ["/v1/wallet/deposits", { currency: "USDC", amount: "1", extra: true }, "VALIDATION_FAILED"],
      ["/v1/wallet/deposits", { currency: "USDC" }, "VALIDATION_FAILED"],
      [
        "/v1/wallet/withdrawals",
        { currency: "USDC", amount: "-5", from: "wallet" },
        "INVALID_AMOUNT",
        "NEGATIVE",
      ],
      [
        "/v1/wallet/withdrawals",
        { currency: "USDC", amount: "0", from: "wallet" },
        "INVALID_AMOUNT",
        "ZERO",
      ],
      [
        "/v1/wallet/withdrawals",
        { currency: "USDC", amount: "1.1234567", from: "wallet" },
        "INVALID_AMOUNT",
        "TOO_MANY_DECIMALS",
      ],
      [
        "/v1/wallet/withdrawals",
        { currency: "USDC", amount: "99999999999999", from: "wallet" },
        "INVALID_AMOUNT",
        "TOO_LARGE",
      ],
      [
        "/v1/wallet/withdrawals",
        { currency: "USDC", amount: "NaN", from: "wallet" },
        "INVALID_AMOUNT",
        "NOT_A_NUMBER",
      ],
      [
        "/v1/wallet/withdrawals",
        { currency: "XYZ", amount: "1", from: "wallet" },
        "UNKNOWN_CURRENCY",
      ],
      [
        "/v1/wallet/withdrawals",
        { currency: "USDC", amount: "1", from: "treasury" },
        "VALIDATION_FAILED",
      ],
    ];
    for (const [path, body, code, problem] of cases) {
      const answer = await post(tc, path, user.apiKey, body, `bad-${Math.random()}`);
      assert.equal(answer.status, 400, JSON.stringify(body));
      assert.equal(answer.body.error?.code, code, JSON.stringify(body));
      if (problem !== undefined)
        assert.equal(answer.body.error?.details?.problem, problem, JSON.stringify(body));
    }
    // The idempotency key is required and checked.
    for (const key of [undefined, "", "has space", "x".repeat(129)]) {
      const answer = await post(
        tc,
        "/v1/wallet/deposits",
        user.apiKey,
        { currency: "USDC", amount: "1" },
        key,
      );
      assert.equal(answer.status, 400, String(key));
      assert.equal(answer.body.error?.code, "VALIDATION_FAILED");
    }
    assert.deepEqual(await ledgerSnapshot(tc), before);
  });

  test("withdrawing more than the balance is 402 INSUFFICIENT_FUNDS and changes nothing", async (t) => {
    const tc = await db.startCoordinator({ config: { faucet: true } });
    t.after(() => tc.close());
    const user = await tc.signUp(["supplier"]);
    await user.client.deposit({ currency: "USDC", amount: "10" });
    const before = await ledgerSnapshot(tc);
    for (const [from, amount] of [
      ["wallet", "10.000001"],
      ["earnings", "0.000001"],
    ] as const) {
      const answer = await post(
        tc,
        "/v1/wallet/withdrawals",
        user.apiKey,
        { currency: "USDC", amount, from },
        `w-${from}`,
      );
      assert.equal(answer.status, 402);
      assert.equal(answer.body.error?.code, "INSUFFICIENT_FUNDS");
      assert.equal(answer.body.error?.details?.balance, from);
    }
    assert.deepEqual(await ledgerSnapshot(tc), before);
    const ok = await user.client.withdraw({
      currency: "USDC",
      amount: "10",
      from: "wallet",
      destination: "iban:X",
    });
    assert.equal(ok.amount, "10.000000");
    assert.equal(usdc(await user.client.wallet())?.wallet, "0.000000");
  });

  test("concurrent withdrawals that together would overdraw: exactly the affordable ones succeed", async (t) => {
    const tc = await db.startCoordinator({ config: { faucet: true } });
    t.after(() => tc.close());
    const user = await tc.signUp(["consumer"]);
    await user.client.deposit({ currency: "USDC", amount: "100" });
    for (const [count, amount, expected] of [
      [2, "60", 1],
      [12, "13", 3], // 100 − 60 = 40 left: three of 13
    ] as const) {
      const answers = await Promise.all(
        Array.from({ length: count }, (_, i) =>
          post(
            tc,
            "/v1/wallet/withdrawals",
            user.apiKey,
            { currency: "USDC", amount, from: "wallet" },
            `c-${amount}-${i}`,
          ),
        ),
      );
      const statuses = answers.map((a) => a.status).sort();
      const wanted: number[] = [];
      for (let i = 0; i < count; i++) wanted.push(i < expected ? 201 : 402);
      assert.deepEqual(statuses, wanted);
    }
    assert.equal(usdc(await user.client.wallet())?.wallet, "1.000000");
    const audit = await tc.client(tc.adminKey).ledgerAudit();
    assert.equal(audit.ok, true);
    assert.deepEqual(
      audit.currencies.find((c) => c.currency === "USDC"),
      {
        currency: "USDC",
        deposits: "100.000000",
        withdrawals: "99.000000",
        burned: "0.000000",
        treasury: "0.000000",
        exchange: "0.000000",
        balances: "1.000000",
        conserved: true,
      },
    );
  });

  test("concurrent requests with one idempotency key move money once", async (t) => {
    const tc = await db.startCoordinator();
    t.after(() => tc.close());
    const user = await tc.signUp(["consumer"]);
    const answers = await Promise.all(
      Array.from({ length: 8 }, () =>
        post(
          tc,
          "/v1/wallet/deposits",
          tc.adminKey,
          { accountId: user.accountId, currency: "TDM", amount: "7" },
          "same",
        ),
      ),
    );
    assert.deepEqual(
      answers.map((a) => a.status),
      Array(8).fill(201),
    );
    assert.equal(new Set(answers.map((a) => a.body.transactionId)).size, 1);
    assert.equal(
      (await user.client.wallet()).balances.find((b) => b.currency === "TDM")?.wallet,
      "7.000000",
    );
  });

  test("a supplier's payout currency: chosen through the API and the CLI, converted at settlement, shown with its rate", async (t) => {
    const tc = await db.startCoordinator();
    t.after(() => tc.close());
    const consumer = await tc.signUp(["consumer"]);
    const supplier = await tc.signUp(["supplier"]);
    const admin = tc.client(tc.adminKey);
    await admin.deposit({ accountId: consumer.accountId, currency: "USDC", amount: "200" });

    assert.deepEqual(await supplier.client.payoutCurrency(), {
      accountId: supplier.accountId,
      currency: null,
    });
    const refused = async (body: unknown, apiKey = supplier.apiKey) => {
      const r = await fetch(new URL("/v1/wallet/payout-currency", tc.url), {
        method: "PUT",
        headers: { authorization: `Bearer ${apiKey}`, "content-type": "application/json" },
        body: JSON.stringify(body),
      });
      return [r.status, ((await r.json()) as Raw["body"]).error?.code];
    };
    assert.deepEqual(await refused({ currency: "EUR" }), [400, "UNKNOWN_CURRENCY"]);
    assert.deepEqual(await refused({ currency: 5 }), [400, "VALIDATION_FAILED"]);
    assert.deepEqual(await refused({}), [400, "VALIDATION_FAILED"]);
    assert.deepEqual(await refused({ currency: "TDM" }, consumer.apiKey), [403, "FORBIDDEN"]);

    const cli = (...args: string[]) =>
      execFileAsync(process.execPath, [TANDEM_BIN, "wallet", ...args], {
        env: { ...process.env, TANDEM_URL: tc.url, TANDEM_API_KEY: supplier.apiKey },
      });
    assert.match((await cli("payout-currency", "TDM")).stdout, /payout currency: TDM/);
    assert.deepEqual(JSON.parse((await cli("payout-currency", "--json")).stdout), {
      accountId: supplier.accountId,
      currency: "TDM",
    });

    const { billing } = tc.coordinator;
    const clusterId = newId(IdPrefix.cluster);
    const q = quote({
      currency: "USDC",
      durationMinutes: 100 * 60,
      nodes: [{ nodeId: "node_a", pricePerHour: money("1") }],
    });
    await billing.transaction((tx) =>
      billing.chargeDeploy(tx, {
        clusterId,
        consumerAccountId: consumer.accountId,
        quote: q,
        idempotencyKey: "deploy-1",
        nowMs: Date.now(),
      }),
    );
    const settle = (servedMinutes: number) =>
      billing.transaction((tx) =>
        billing.settleLease(tx, {
          clusterId,
          leaseId: `${clusterId}:node_a`,
          supplierAccountId: supplier.accountId,
          currency: "USDC",
          pricePerHour: money("1"),
          servedMinutes,
          nowMs: Date.now(),
        }),
      );
    await settle(40 * 60);
    // 40 USDC served: net 39.700000 USDC, paid as 79.400000 TDM at the default 2 TDM per dollar.
    const balances = (await supplier.client.wallet()).balances;
    assert.equal(balances.find((b) => b.currency === "TDM")?.earnings, "79.400000");
    assert.equal(balances.find((b) => b.currency === "USDC")?.earnings, "0.000000");
    const [settled] = (await supplier.client.walletTransactions()).items;
    assert.deepEqual(settled?.exchange, {
      from: "USDC",
      to: "TDM",
      rate: "2.000000",
      fromPerUsd: "1.000000",
      toPerUsd: "2.000000",
    });
    const history = (await cli("history")).stdout;
    assert.match(history, /79\.400000 TDM\s+2\.000000 TDM\/USDC/);
    const costs = await consumer.client.clusterCosts(clusterId);
    assert.deepEqual(
      [costs.paidOut, costs.payouts],
      ["39.700000", [{ currency: "TDM", amount: "79.400000", rate: "2.000000" }]],
    );
    const audit = await admin.ledgerAudit();
    assert.equal(audit.ok, true);
    assert.deepEqual(
      audit.currencies.map((c) => [c.currency, c.exchange, c.conserved]),
      [
        ["TDM", "-79.400000", true],
        ["USDC", "39.700000", true],
        ["USD", "0.000000", true],
      ],
    );
    // Back to the default: the next settlement pays in the consumer's currency.
    assert.match((await cli("payout-currency", "default")).stdout, /default/);
    await settle(41 * 60);
    const after = (await supplier.client.wallet()).balances;
    assert.equal(after.find((b) => b.currency === "USDC")?.earnings, "0.992500");
  });

  test("a cluster's costs, earnings withdrawal and the audit, after charge, settlement and refund", async (t) => {
    const tc = await db.startCoordinator();
    t.after(() => tc.close());
    const consumer = await tc.signUp(["consumer"]);
    const supplier = await tc.signUp(["supplier"]);
    const stranger = await tc.signUp(["consumer"]);
    const admin = tc.client(tc.adminKey);
    await admin.deposit({ accountId: consumer.accountId, currency: "USDC", amount: "200" });
    const { billing } = tc.coordinator;
    const clusterId = newId(IdPrefix.cluster);
    const leaseId = `${clusterId}:node_a`;
    const q = quote({
      currency: "USDC",
      durationMinutes: 100 * 60,
      nodes: [{ nodeId: "node_a", pricePerHour: money("1") }],
    });
    await billing.transaction(async (tx) => {
      const charged = await billing.chargeDeploy(tx, {
        clusterId,
        consumerAccountId: consumer.accountId,
        quote: q,
        idempotencyKey: "deploy-1",
        nowMs: Date.now(),
      });
      assert.equal(charged.ok, true);
    });
    await billing.transaction((tx) =>
      billing.settleLease(tx, {
        clusterId,
        leaseId,
        supplierAccountId: supplier.accountId,
        currency: "USDC",
        pricePerHour: money("1"),
        servedMinutes: 40 * 60,
        nowMs: Date.now(),
      }),
    );
    await billing.transaction((tx) =>
      billing.refundRemainder(tx, {
        clusterId,
        consumerAccountId: consumer.accountId,
        currency: "USDC",
        nowMs: Date.now(),
      }),
    );

    assert.deepEqual(await consumer.client.clusterCosts(clusterId), {
      clusterId,
      currency: "USDC",
      charged: "102.250000",
      rental: "100.000000",
      consumerFees: { reservation: "0.250000", payment: "2.000000" },
      served: "40.000000",
      paidOut: "39.700000",
      supplierFees: "0.100000",
      burned: "0.200000",
      refunded: "60.000000",
      escrow: "0.000000",
      slashCompensation: "0.000000",
      payouts: [{ currency: "USDC", amount: "39.700000", rate: null }],
    });
    await assert.rejects(
      stranger.client.clusterCosts(clusterId),
      (e: TandemApiError) => e.code === "NOT_FOUND",
    );
    assert.equal((await admin.clusterCosts(clusterId)).charged, "102.250000");

    assert.deepEqual(usdc(await consumer.client.wallet()), {
      currency: "USDC",
      wallet: "157.750000",
      earnings: "0.000000",
    });
    assert.deepEqual(usdc(await supplier.client.wallet()), {
      currency: "USDC",
      wallet: "0.000000",
      earnings: "39.700000",
    });
    const kinds = (await consumer.client.walletTransactions()).items.map((i) => i.kind).sort();
    assert.deepEqual(kinds, ["charge-deploy", "deposit", "refund"]);

    await supplier.client.withdraw({ currency: "USDC", amount: "39.7" });
    await assert.rejects(
      supplier.client.withdraw({ currency: "USDC", amount: "0.000001" }),
      (e: TandemApiError) => e.code === "INSUFFICIENT_FUNDS" && e.status === 402,
    );

    await assert.rejects(
      consumer.client.ledgerAudit(),
      (e: TandemApiError) => e.code === "FORBIDDEN",
    );
    const audit = await admin.ledgerAudit();
    assert.equal(audit.ok, true);
    assert.equal(audit.unbalancedTransactions, 0);
    assert.deepEqual(
      audit.currencies.find((c) => c.currency === "USDC"),
      {
        currency: "USDC",
        deposits: "200.000000",
        withdrawals: "39.700000",
        burned: "0.200000",
        treasury: "2.350000",
        exchange: "0.000000",
        balances: "160.100000", // 157.75 wallet + 2.35 treasury
        conserved: true,
      },
    );
  });
});
